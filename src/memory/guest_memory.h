// GuestMemory: the guest's RAM as a set of host mappings, reached only through
// bounds-checked accessors (rule 1). No raw guest pointer escapes: a caller gets a
// span that lies wholly inside one region, or nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "base/mapping.h"
#include "base/result.h"

namespace vireo {

using GuestAddress = uint64_t;

// One contiguous range of guest-physical RAM.
struct RamRange {
  GuestAddress base = 0;
  uint64_t size = 0;
  GuestAddress end() const { return base + size; }
};

enum class MemoryBacking { kAnonymous, kHugePages };

struct MemoryOptions {
  MemoryBacking backing = MemoryBacking::kAnonymous;
  bool mlock = false;
  bool transparent_huge_pages = true;  // madvise(MADV_HUGEPAGE) on anonymous memory
};

class GuestMemory {
 public:
  struct Region {
    RamRange range;
    Mapping mapping;
    // The range starts this far into `mapping` (0 for Create). Non-zero for memory mapped from
    // another process's fd (vhost-user), where mmap offsets must be page-aligned but the
    // region's offset in the file need not be.
    uint64_t mapping_offset = 0;
    uint8_t* host() const { return mapping.bytes() + mapping_offset; }
  };

  // Maps each range as its own host mapping. Errors name the fix (e.g. reserve hugepages).
  static Result<GuestMemory> Create(std::span<const RamRange> ranges, const MemoryOptions& options);
  // Takes mappings made elsewhere (vhost-user SET_MEM_TABLE). Each region must be non-empty,
  // lie inside its mapping (mapping_offset + size <= mapping.size()), not wrap, and not overlap
  // another; an empty list is an error.
  static Result<GuestMemory> FromRegions(std::vector<Region> regions);
  // Maps `ranges` from the file `fd` copy-on-write (MAP_PRIVATE), back to back from offset 0,
  // for snapshot restore: a page is read from the file when first touched, so the cost does
  // not grow with the guest's size, and guest writes never reach the file. The file must
  // be exactly as large as the ranges together.
  static Result<GuestMemory> MapFile(int fd, std::span<const RamRange> ranges);

  GuestMemory(GuestMemory&&) = default;
  GuestMemory& operator=(GuestMemory&&) = default;

  // A host view of [addr, addr+len) when it lies wholly inside one RAM region.
  std::optional<std::span<uint8_t>> Span(GuestAddress addr, uint64_t len) const;

  // Copies; false (nothing copied) when any byte falls outside RAM.
  bool Read(GuestAddress addr, std::span<uint8_t> out) const;
  bool Write(GuestAddress addr, std::span<const uint8_t> data) const;

  template <typename T>
  requires std::is_trivially_copyable_v<T> std::optional<T> ReadObj(GuestAddress addr)
  const {
    T value;
    if (!Read(addr, {reinterpret_cast<uint8_t*>(&value), sizeof(T)})) return std::nullopt;
    return value;
  }
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  bool WriteObj(GuestAddress addr, const T& value) const {
    return Write(addr, {reinterpret_cast<const uint8_t*>(&value), sizeof(T)});
  }

  // Same as Write but returns an error naming what did not fit (for loaders).
  Status WriteOrFail(GuestAddress addr, std::span<const uint8_t> data, std::string_view what) const;

  bool Contains(GuestAddress addr, uint64_t len) const { return Span(addr, len).has_value(); }
  uint64_t total_size() const;
  std::span<const Region> regions() const { return regions_; }

  // The VMM's own writes to guest RAM (devices: used rings and status bytes, data read from
  // a disk, received frames, discarded balloon pages). No accelerator's dirty log sees them
  // (they are not guest stores), so live migration and diff snapshots add this log to the
  // accelerator's. Off until StartWriteLog; from then on Write marks the pages it wrote, and
  // code that writes through a Span or an iovec made from one calls MarkWritten* after the
  // bytes are in place (a page fetched in between is marked again, so it is sent again).
  void StartWriteLog() const;
  // Per region (regions() order), the bitmap of pages marked since the last fetch (bit i of
  // word i/64 = page i); clears it. Empty bitmaps while the log is off.
  std::vector<std::vector<uint64_t>> FetchWriteLog() const;
  void MarkWritten(GuestAddress addr, uint64_t len) const;
  void MarkWrittenHost(const void* host, uint64_t len) const;

 private:
  struct WriteLog;
  GuestMemory() = default;
  void CreateWriteLog();
  void MarkRegion(size_t region, uint64_t offset, uint64_t len) const;
  std::vector<Region> regions_;
  // Shared: GuestMemory moves, and writers on other threads hold the memory, not the log.
  std::shared_ptr<WriteLog> write_log_;
};

}  // namespace vireo
