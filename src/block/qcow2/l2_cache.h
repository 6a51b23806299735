// L2Cache: L2 tables kept in memory (host byte order), least recently used evicted first.
// Writes go through to the file at once, so an evicted table needs no write-back.
// Not thread-safe: the caller holds the image's metadata lock. A pointer from Get stays
// valid until the next Get evicts it (at least the three most recent tables are kept).
#pragma once

#include <cstdint>
#include <list>
#include <unordered_map>
#include <vector>

#include "block/image.h"

namespace vireo::block::qcow2 {

class L2Cache {
 public:
  L2Cache(int fd, uint32_t cluster_size, size_t capacity_bytes);

  tl::expected<std::vector<uint64_t>*, IoError> Get(uint64_t table_offset);
  // Sets entries [index, index + values.size()) and writes them.
  IoStatus Set(uint64_t table_offset, uint64_t index, std::span<const uint64_t> values);
  // Writes a whole new table and caches it.
  IoStatus Put(uint64_t table_offset, std::vector<uint64_t> table);
  void Forget(uint64_t table_offset);
  void Clear();

 private:
  struct Entry {
    std::vector<uint64_t> table;
    std::list<uint64_t>::iterator lru;
  };
  Entry& Insert(uint64_t table_offset, std::vector<uint64_t> table);

  int fd_;
  uint32_t cluster_size_;
  size_t capacity_;
  std::unordered_map<uint64_t, Entry> tables_;
  std::list<uint64_t> lru_;  // Front: most recently used.
};

}  // namespace vireo::block::qcow2
