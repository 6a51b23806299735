#include "memory/guest_memory.h"

#include <sys/mman.h>

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
