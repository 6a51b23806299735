#include "memory/guest_memory.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
  return true;
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
