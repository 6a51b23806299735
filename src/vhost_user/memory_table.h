// The front-end's memory table (SET_MEM_TABLE): each region's fd mapped shared into this
// process, as a GuestMemory the devices use exactly as they use a VM's RAM, plus the
// front-end's virtual address of each region, through which vring addresses are translated.
//
// Everything in the table is checked before anything is mapped: sizes non-zero, no address
// range wraps (guest-physical, front-end virtual, or file offset), guest-physical and virtual
// ranges do not overlap, each fd is a regular file (memfd, tmpfs, hugetlbfs) at least
// mmap_offset + memory_size long. A frontend that later shrinks an unsealed file could still
// make an access fault (SIGBUS); QEMU's memory-backend-memfd seals its files by default.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "memory/guest_memory.h"
#include "vhost_user/protocol.h"

namespace vireo::vhost_user {

class MemoryTable {
 public:
  // One fd per region, in order. The fds may be closed once this returns.
  static Result<MemoryTable> Map(std::span<const MemoryRegion> regions,
                                 std::span<const UniqueFd> fds);

  MemoryTable(MemoryTable&&) = default;
  MemoryTable& operator=(MemoryTable&&) = default;

  const GuestMemory& memory() const { return memory_; }
  std::span<const MemoryRegion> regions() const { return regions_; }
  // The guest-physical address of front-end virtual address `user_addr`, when
  // [user_addr, user_addr + len) lies inside one region.
  std::optional<GuestAddress> Translate(uint64_t user_addr, uint64_t len) const;

 private:
  MemoryTable(GuestMemory memory, std::vector<MemoryRegion> regions)
      : memory_(std::move(memory)), regions_(std::move(regions)) {}

  GuestMemory memory_;
  std::vector<MemoryRegion> regions_;
};

}  // namespace vireo::vhost_user
