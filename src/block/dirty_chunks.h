// DirtyChunkMap: which fixed-size chunks of a disk were written since the last look, for block
// migration (docs/snapshot-migration.md, "Block migration"). The virtio-blk device marks the
// range of every write, discard and write-zeroes when the backend completes it; the migration
// thread takes and clears the bits. Marking after completion (not at submission) matters: a
// chunk whose bit the sender has just cleared and read can only change again with a completion
// that sets the bit again, so no write is missed.
//
// Threading: Mark runs on the device's I/O thread, Start/Stop/Take/CountDirty on the migration
// thread; the bitmap words are atomics. While not tracking, Mark is one load and a branch.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace vireo::block {

class DirtyChunkMap {
 public:
  static constexpr uint64_t kChunkSize = 64 << 10;

  explicit DirtyChunkMap(uint64_t disk_size);

  uint64_t disk_size() const { return disk_size_; }
  uint64_t chunk_count() const { return chunk_count_; }
  // The byte length of chunk `index` (the last one may be short).
  uint64_t ChunkLength(uint64_t index) const;

  // Clears every bit and starts recording writes.
  void Start();
  void Stop() { tracking_.store(false); }
  bool tracking() const { return tracking_.load(); }

  // Records a completed write of [offset, offset + length), clamped to the disk.
  void Mark(uint64_t offset, uint64_t length) {
    if (!tracking_.load()) return;  // seq_cst: pairs with Start's store (a plain load on x86)
    MarkSlow(offset, length);
  }
  // The chunks marked since the previous Take (or Start), in ascending order; clears them.
  std::vector<uint64_t> Take();
  // How many chunks are marked now, without clearing.
  uint64_t CountDirty() const;

 private:
  void MarkSlow(uint64_t offset, uint64_t length);

  const uint64_t disk_size_;
  const uint64_t chunk_count_;
  std::unique_ptr<std::atomic<uint64_t>[]> words_;
  const size_t word_count_;
  std::atomic<bool> tracking_{false};
};

}  // namespace vireo::block
