#include "memory/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "base/bytes.h"

namespace vireo {
namespace {

constexpr uint64_t kHugePageSize = 2ull << 20;

Result<Mapping> MapRange(const RamRange& range, const MemoryOptions& options) {
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (options.backing == MemoryBacking::kHugePages) {
    if (range.size % kHugePageSize != 0) {
      return Fail("hugepage-backed RAM range at {:#x} has size {:#x}, not a multiple of 2 MiB",
                  range.base, range.size);
    }
    flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | (21 << MAP_HUGE_SHIFT);
  }
  void* addr = ::mmap(nullptr, range.size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (addr == MAP_FAILED) {
    int err = errno;
    if (options.backing == MemoryBacking::kHugePages) {
      return Fail(
          "cannot map {} MiB of 2 MiB hugepages ({}); reserve enough with "
          "'echo N > /sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages' or use "
          "--memory-backing anon",
          range.size >> 20, std::strerror(err));
    }
    return Fail("cannot map {} MiB of guest RAM: {}", range.size >> 20, std::strerror(err));
  }
  Mapping mapping(addr, range.size);
  if (options.backing == MemoryBacking::kAnonymous && options.transparent_huge_pages) {
    // Best effort: THP may be disabled system-wide, which is not an error.
    ::madvise(addr, range.size, MADV_HUGEPAGE);
  }
  if (options.mlock && ::mlock(addr, range.size) != 0) {
    return Fail("--mlock: cannot lock {} MiB of guest RAM: {}; raise 'ulimit -l' or run as root",
                range.size >> 20, std::strerror(errno));
  }
  return mapping;
}

}  // namespace

Result<GuestMemory> GuestMemory::Create(std::span<const RamRange> ranges,
                                        const MemoryOptions& options) {
  GuestMemory memory;
  for (const RamRange& range : ranges) {
    if (range.size == 0) continue;
    for (const Region& other : memory.regions_) {
      if (range.base < other.range.end() && other.range.base < range.end()) {
        return Fail("guest RAM ranges overlap at {:#x}", range.base);
      }
    }
    Mapping mapping = VIREO_TRY(MapRange(range, options));
    memory.regions_.push_back(Region{range, std::move(mapping)});
  }
  if (memory.regions_.empty()) return Fail("guest has no RAM");
  memory.CreateWriteLog();
  return memory;
}

Result<GuestMemory> GuestMemory::FromRegions(std::vector<Region> regions) {
  GuestMemory memory;
  for (Region& region : regions) {
    const RamRange& range = region.range;
    if (range.size == 0) return Fail("guest RAM region at {:#x} is empty", range.base);
    if (range.base + range.size < range.base) {
      return Fail("guest RAM region at {:#x} (size {:#x}) wraps", range.base, range.size);
    }
    if (!region.mapping || !RangeFits(region.mapping_offset, range.size, region.mapping.size())) {
      return Fail("guest RAM region at {:#x} does not lie inside its mapping", range.base);
    }
    for (const Region& other : memory.regions_) {
      if (range.base < other.range.end() && other.range.base < range.end()) {
        return Fail("guest RAM ranges overlap at {:#x}", range.base);
      }
    }
    memory.regions_.push_back(std::move(region));
  }
  if (memory.regions_.empty()) return Fail("guest has no RAM");
  memory.CreateWriteLog();
  return memory;
}

Result<GuestMemory> GuestMemory::MapFile(int fd, std::span<const RamRange> ranges) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return Fail("cannot stat the memory file: {}", std::strerror(errno));
  uint64_t total = 0;
  for (const RamRange& range : ranges) total += range.size;
  if (static_cast<uint64_t>(st.st_size) != total) {
    return Fail("the memory file is {} bytes, but the VM has {} bytes of RAM", st.st_size, total);
  }
  GuestMemory memory;
  uint64_t offset = 0;
  for (const RamRange& range : ranges) {
    if (range.size == 0 || range.size % 4096 != 0) {
      return Fail("RAM range at {:#x} is not a whole number of pages", range.base);
    }
    // Anonymous zero memory for the whole range, with the file's data extents mapped over it:
    // the holes (zero pages, most of an idle guest) then fault as cheaply as fresh RAM instead
    // of going through the file system. Too many extents, or a file system without SEEK_DATA:
    // the whole range from the file.
    void* addr = ::mmap(nullptr, range.size, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (addr == MAP_FAILED) {
      return Fail("cannot map {} MiB of guest RAM: {}", range.size >> 20, std::strerror(errno));
    }
    Mapping mapping(addr, range.size);
    auto map_file = [&](uint64_t at, uint64_t len) {
      return ::mmap(mapping.bytes() + at, len, PROT_READ | PROT_WRITE,
                    MAP_PRIVATE | MAP_NORESERVE | MAP_FIXED, fd, static_cast<off_t>(offset + at));
    };
    constexpr int kMaxExtents = 4096;  // each is a VMA; the kernel allows ~65000 per process
    bool whole = false;
    int extents = 0;
    for (uint64_t pos = 0; pos < range.size;) {
      off_t data = ::lseek(fd, static_cast<off_t>(offset + pos), SEEK_DATA);
      if (data < 0) {
        whole = errno != ENXIO;  // ENXIO: no data after pos; anything else: no SEEK_DATA
        break;
      }
      if (static_cast<uint64_t>(data) >= offset + range.size) break;
      off_t hole = ::lseek(fd, data, SEEK_HOLE);
      if (hole < 0 || ++extents > kMaxExtents) {
        whole = true;
        break;
      }
      const uint64_t begin = (static_cast<uint64_t>(data) - offset) & ~uint64_t{4095};
      const uint64_t end = std::min<uint64_t>(
          ((static_cast<uint64_t>(hole) - offset) + 4095) & ~uint64_t{4095}, range.size);
      if (map_file(begin, end - begin) == MAP_FAILED) {
        return Fail("cannot map the memory file: {}", std::strerror(errno));
      }
      pos = end;
    }
    if (whole && map_file(0, range.size) == MAP_FAILED) {
      return Fail("cannot map {} MiB of the memory file: {}", range.size >> 20,
                  std::strerror(errno));
    }
    memory.regions_.push_back(Region{range, std::move(mapping)});
    offset += range.size;
  }
  if (memory.regions_.empty()) return Fail("guest has no RAM");
  memory.CreateWriteLog();
  return memory;
}

std::optional<std::span<uint8_t>> GuestMemory::Span(GuestAddress addr, uint64_t len) const {
  for (const Region& region : regions_) {
    if (addr < region.range.base) continue;
    uint64_t offset = addr - region.range.base;
    if (!RangeFits(offset, len, region.range.size)) continue;
    return std::span<uint8_t>(region.host() + offset, len);
  }
  return std::nullopt;
}

bool GuestMemory::Read(GuestAddress addr, std::span<uint8_t> out) const {
  auto span = Span(addr, out.size());
  if (!span) return false;
  if (out.empty()) return true;  // memcpy's pointers must be valid even for 0 bytes
  std::memcpy(out.data(), span->data(), out.size());
  return true;
}

bool GuestMemory::Write(GuestAddress addr, std::span<const uint8_t> data) const {
  auto span = Span(addr, data.size());
  if (!span) return false;
  if (data.empty()) return true;
  std::memcpy(span->data(), data.data(), data.size());
  MarkWritten(addr, data.size());
  return true;
}

struct GuestMemory::WriteLog {
  static constexpr uint64_t kPageShift = 12;
  std::atomic<bool> enabled{false};
  // Per region: one bit per page, in atomic words (devices mark from several threads).
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> bits;
  std::vector<size_t> words;
};

void GuestMemory::CreateWriteLog() {
  write_log_ = std::make_shared<WriteLog>();
  for (const Region& region : regions_) {
    const uint64_t pages =
        (region.range.size + (1ull << WriteLog::kPageShift) - 1) >> WriteLog::kPageShift;
    const size_t words = static_cast<size_t>((pages + 63) / 64);
    write_log_->bits.push_back(std::make_unique<std::atomic<uint64_t>[]>(words));
    write_log_->words.push_back(words);
  }
}

void GuestMemory::StartWriteLog() const {
  if (write_log_) write_log_->enabled.store(true, std::memory_order_release);
}

std::vector<std::vector<uint64_t>> GuestMemory::FetchWriteLog() const {
  std::vector<std::vector<uint64_t>> out(regions_.size());
  if (!write_log_ || !write_log_->enabled.load(std::memory_order_acquire)) return out;
  for (size_t r = 0; r < regions_.size(); ++r) {
    out[r].resize(write_log_->words[r]);
    for (size_t w = 0; w < out[r].size(); ++w) {
      out[r][w] = write_log_->bits[r][w].exchange(0, std::memory_order_acq_rel);
    }
  }
  return out;
}

void GuestMemory::MarkRegion(size_t region, uint64_t offset, uint64_t len) const {
  if (len == 0) return;
  std::atomic<uint64_t>* bits = write_log_->bits[region].get();
  const uint64_t last = (offset + len - 1) >> WriteLog::kPageShift;
  for (uint64_t page = offset >> WriteLog::kPageShift; page <= last; ++page) {
    bits[page / 64].fetch_or(uint64_t{1} << (page % 64), std::memory_order_release);
  }
}

void GuestMemory::MarkWritten(GuestAddress addr, uint64_t len) const {
  if (!write_log_ || !write_log_->enabled.load(std::memory_order_acquire)) return;
  for (size_t r = 0; r < regions_.size(); ++r) {
    const RamRange& range = regions_[r].range;
    if (addr < range.base || addr - range.base >= range.size) continue;
    const uint64_t offset = addr - range.base;
    MarkRegion(r, offset, std::min(len, range.size - offset));
    return;
  }
}

void GuestMemory::MarkWrittenHost(const void* host, uint64_t len) const {
  if (!write_log_ || !write_log_->enabled.load(std::memory_order_acquire)) return;
  const auto* p = static_cast<const uint8_t*>(host);
  for (size_t r = 0; r < regions_.size(); ++r) {
    const uint8_t* base = regions_[r].host();
    if (p < base || p >= base + regions_[r].range.size) continue;
    const auto offset = static_cast<uint64_t>(p - base);
    MarkRegion(r, offset, std::min(len, regions_[r].range.size - offset));
    return;
  }
}

Status GuestMemory::WriteOrFail(GuestAddress addr, std::span<const uint8_t> data,
                                std::string_view what) const {
  if (Write(addr, data)) return {};
  return Fail(
      "{} ({} bytes at guest address {:#x}) does not fit in guest RAM; give the VM more "
      "--memory",
      what, data.size(), addr);
}

uint64_t GuestMemory::total_size() const {
  uint64_t total = 0;
  for (const Region& region : regions_) total += region.range.size;
  return total;
}

}  // namespace vireo
