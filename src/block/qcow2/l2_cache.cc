#include "block/qcow2/l2_cache.h"

#include <string.h>

#include <algorithm>

#include "block/image_file.h"
#include "block/qcow2/format.h"

namespace vireo::block::qcow2 {

L2Cache::L2Cache(int fd, uint32_t cluster_size, size_t capacity_bytes)
    : fd_(fd),
      cluster_size_(cluster_size),
      capacity_(std::max<size_t>(4, capacity_bytes / cluster_size)) {}

L2Cache::Entry& L2Cache::Insert(uint64_t table_offset, std::vector<uint64_t> table) {
  while (tables_.size() >= capacity_) {
    tables_.erase(lru_.back());
    lru_.pop_back();
  }
  lru_.push_front(table_offset);
  return tables_.emplace(table_offset, Entry{std::move(table), lru_.begin()}).first->second;
}

tl::expected<std::vector<uint64_t>*, IoError> L2Cache::Get(uint64_t table_offset) {
  if (auto it = tables_.find(table_offset); it != tables_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    return &it->second.table;
  }
  std::vector<uint8_t> raw(cluster_size_);
  if (int err = ReadFully(fd_, raw.data(), cluster_size_, table_offset)) {
    return IoFail(err, "reading the L2 table at {:#x}: {}", table_offset, strerror(err));
  }
  std::vector<uint64_t> table(cluster_size_ / 8);
  for (size_t i = 0; i < table.size(); ++i) table[i] = LoadBe64(&raw[i * 8]);
  return &Insert(table_offset, std::move(table)).table;
}

IoStatus L2Cache::Set(uint64_t table_offset, uint64_t index, std::span<const uint64_t> values) {
  std::vector<uint64_t>* table = VIREO_TRY(Get(table_offset));
  std::vector<uint8_t> raw(values.size() * 8);
  for (size_t i = 0; i < values.size(); ++i) {
    (*table)[index + i] = values[i];
    StoreBe64(&raw[i * 8], values[i]);
  }
  if (int err = WriteFully(fd_, raw.data(), raw.size(), table_offset + index * 8)) {
    Forget(table_offset);  // The file may hold either value now; read it again.
    return IoFail(err, "writing the L2 table at {:#x}: {}", table_offset, strerror(err));
  }
  return {};
}

IoStatus L2Cache::Put(uint64_t table_offset, std::vector<uint64_t> table) {
  std::vector<uint8_t> raw(cluster_size_);
  for (size_t i = 0; i < table.size(); ++i) StoreBe64(&raw[i * 8], table[i]);
  if (int err = WriteFully(fd_, raw.data(), raw.size(), table_offset)) {
    return IoFail(err, "writing the L2 table at {:#x}: {}", table_offset, strerror(err));
  }
  Forget(table_offset);
  Insert(table_offset, std::move(table));
  return {};
}

void L2Cache::Forget(uint64_t table_offset) {
  if (auto it = tables_.find(table_offset); it != tables_.end()) {
    lru_.erase(it->second.lru);
    tables_.erase(it);
  }
}

void L2Cache::Clear() {
  tables_.clear();
  lru_.clear();
}

}  // namespace vireo::block::qcow2
