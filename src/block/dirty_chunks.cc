#include "block/dirty_chunks.h"

#include <algorithm>
#include <bit>

namespace vireo::block {

DirtyChunkMap::DirtyChunkMap(uint64_t disk_size)
    : disk_size_(disk_size),
      chunk_count_((disk_size + kChunkSize - 1) / kChunkSize),
      words_(new std::atomic<uint64_t>[(chunk_count_ + 63) / 64]),
      word_count_((chunk_count_ + 63) / 64) {
  for (size_t i = 0; i < word_count_; ++i) words_[i].store(0, std::memory_order_relaxed);
}

uint64_t DirtyChunkMap::ChunkLength(uint64_t index) const {
  const uint64_t start = index * kChunkSize;
  if (start >= disk_size_) return 0;
  return std::min(kChunkSize, disk_size_ - start);
}

void DirtyChunkMap::Start() {
  for (size_t i = 0; i < word_count_; ++i) words_[i].store(0, std::memory_order_relaxed);
  tracking_.store(true);
}

void DirtyChunkMap::MarkSlow(uint64_t offset, uint64_t length) {
  if (length == 0 || offset >= disk_size_) return;
  const uint64_t end = length > disk_size_ - offset ? disk_size_ : offset + length;
  for (uint64_t chunk = offset / kChunkSize; chunk * kChunkSize < end; ++chunk) {
    // Release: whoever takes the bit (acquire) reads the disk after this write completed.
    words_[chunk / 64].fetch_or(uint64_t{1} << (chunk % 64), std::memory_order_release);
  }
}

std::vector<uint64_t> DirtyChunkMap::Take() {
  std::vector<uint64_t> chunks;
  for (size_t w = 0; w < word_count_; ++w) {
    if (words_[w].load(std::memory_order_relaxed) == 0) continue;
    for (uint64_t bits = words_[w].exchange(0, std::memory_order_acquire); bits != 0;
         bits &= bits - 1) {
      chunks.push_back(w * 64 + static_cast<uint64_t>(std::countr_zero(bits)));
    }
  }
  return chunks;
}

uint64_t DirtyChunkMap::CountDirty() const {
  uint64_t count = 0;
  for (size_t w = 0; w < word_count_; ++w) {
    count += static_cast<uint64_t>(std::popcount(words_[w].load(std::memory_order_relaxed)));
  }
  return count;
}

}  // namespace vireo::block
