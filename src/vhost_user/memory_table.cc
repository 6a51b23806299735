#include "vhost_user/memory_table.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/bytes.h"

namespace vireo::vhost_user {
namespace {

bool Wraps(uint64_t base, uint64_t size) { return base + size < base; }
bool Overlap(uint64_t a, uint64_t a_size, uint64_t b, uint64_t b_size) {
  return a < b + b_size && b < a + a_size;
}

Status CheckRegion(const MemoryRegion& r, size_t i) {
  if (r.memory_size == 0) return Fail("memory region {} is empty", i);
  if (Wraps(r.guest_phys_addr, r.memory_size) || Wraps(r.userspace_addr, r.memory_size) ||
      Wraps(r.mmap_offset, r.memory_size)) {
    return Fail("memory region {} (gpa {:#x}, size {:#x}) wraps around", i, r.guest_phys_addr,
                r.memory_size);
  }
  return {};
}

Result<GuestMemory::Region> MapRegion(const MemoryRegion& r, size_t i, int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) return Fail("memory region {}: fstat: {}", i, std::strerror(errno));
  // Only files: mapping a device node a hostile front-end passed could do anything.
  if (!S_ISREG(st.st_mode)) return Fail("memory region {}: the fd is not a regular file", i);
  // Touching a shared mapping past the end of its file raises SIGBUS.
  if (st.st_size < 0 || static_cast<uint64_t>(st.st_size) < r.mmap_offset + r.memory_size) {
    return Fail("memory region {}: offset {:#x} + size {:#x} runs past the file's {:#x} bytes", i,
                r.mmap_offset, r.memory_size, st.st_size);
  }
  // mmap's offset must be a multiple of the page size; hugetlbfs reports its page size in
  // st_blksize. The region then starts part-way into the mapping.
  uint64_t align = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const uint64_t blksize = static_cast<uint64_t>(st.st_blksize);
  if (blksize > align && (blksize & (blksize - 1)) == 0 && blksize <= (1ull << 30)) {
    align = blksize;
  }
  const uint64_t start = r.mmap_offset & ~(align - 1);
  const uint64_t length = r.mmap_offset - start + r.memory_size;
  if (length > SIZE_MAX) return Fail("memory region {} is too large to map", i);
  void* addr = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd,
                      static_cast<off_t>(start));
  if (addr == MAP_FAILED) {
    return Fail("memory region {}: mmap of {:#x} bytes at offset {:#x}: {}", i, length, start,
                std::strerror(errno));
  }
  return GuestMemory::Region{RamRange{r.guest_phys_addr, r.memory_size}, Mapping(addr, length),
                             r.mmap_offset - start};
}

}  // namespace

Result<MemoryTable> MemoryTable::Map(std::span<const MemoryRegion> regions,
                                     std::span<const UniqueFd> fds) {
  if (regions.empty()) return Fail("the memory table is empty");
  if (regions.size() > kMaxMemRegions) {
    return Fail("the memory table has {} regions, at most {}", regions.size(), kMaxMemRegions);
  }
  if (fds.size() != regions.size()) {
    return Fail("the memory table has {} regions but {} fds", regions.size(), fds.size());
  }
  for (size_t i = 0; i < regions.size(); ++i) {
    VIREO_TRY_STATUS(CheckRegion(regions[i], i));
    for (size_t j = 0; j < i; ++j) {
      // Overlapping virtual ranges would make Translate ambiguous.
      if (Overlap(regions[i].userspace_addr, regions[i].memory_size, regions[j].userspace_addr,
                  regions[j].memory_size)) {
        return Fail("memory regions {} and {} overlap in the front-end's address space", j, i);
      }
    }
  }
  std::vector<GuestMemory::Region> mapped;
  mapped.reserve(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    mapped.push_back(VIREO_TRY(MapRegion(regions[i], i, fds[i].get())));
  }
  // FromRegions refuses guest-physical overlaps.
  GuestMemory memory = VIREO_TRY(GuestMemory::FromRegions(std::move(mapped)));
  return MemoryTable(std::move(memory), std::vector<MemoryRegion>(regions.begin(), regions.end()));
}

std::optional<GuestAddress> MemoryTable::Translate(uint64_t user_addr, uint64_t len) const {
  for (const MemoryRegion& r : regions_) {
    if (user_addr < r.userspace_addr) continue;
    const uint64_t offset = user_addr - r.userspace_addr;
    if (!RangeFits(offset, len, r.memory_size)) continue;
    return r.guest_phys_addr + offset;
  }
  return std::nullopt;
}

}  // namespace vireo::vhost_user
