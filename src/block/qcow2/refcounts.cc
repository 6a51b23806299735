#include "block/qcow2/refcounts.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include "block/image_file.h"
#include "block/qcow2/format.h"

namespace vireo::block::qcow2 {

Refcounts::Refcounts(int fd, Header& header, std::function<IoStatus()> write_header)
    : fd_(fd),
      header_(header),
      write_header_(std::move(write_header)),
      cluster_size_(header.cluster_size()),
      entries_per_block_(uint64_t{header.cluster_size()} * 8 / header.refcount_bits()) {}

IoStatus Refcounts::Load() {
  const uint64_t bytes = uint64_t{header_.refcount_table_clusters} * cluster_size_;
  std::vector<uint8_t> raw(bytes);
  if (int err = ReadFully(fd_, raw.data(), bytes, header_.refcount_table_offset)) {
    return IoFail(err, "reading the refcount table: {}", strerror(err));
  }
  table_.resize(bytes / 8);
  for (size_t i = 0; i < table_.size(); ++i) {
    uint64_t entry = LoadBe64(&raw[i * 8]);
    if ((entry & (cluster_size_ - 1)) != 0) {
      return IoFail(EIO, "refcount table entry {} ({:#x}) is not cluster-aligned", i, entry);
    }
    table_[i] = entry;
    if (entry != 0) block_offsets_.insert(entry);
  }
  return {};
}

uint64_t Refcounts::EntryOf(const Block& block, uint64_t index) const {
  const uint32_t bits = header_.refcount_bits();
  if (bits < 8) {
    const uint64_t per_byte = 8 / bits;
    return (block.bytes[index / per_byte] >> (bits * (index % per_byte))) & ((1u << bits) - 1);
  }
  const uint8_t* p = &block.bytes[index * (bits / 8)];
  switch (bits) {
    case 8:
      return p[0];
    case 16:
      return LoadBe16(p);
    case 32:
      return LoadBe32(p);
    default:
      return LoadBe64(p);
  }
}

void Refcounts::SetEntry(Block& block, uint64_t index, uint64_t value) {
  const uint32_t bits = header_.refcount_bits();
  if (bits < 8) {
    const uint64_t per_byte = 8 / bits;
    const unsigned shift = bits * (index % per_byte);
    uint8_t& byte = block.bytes[index / per_byte];
    byte = static_cast<uint8_t>((byte & ~(((1u << bits) - 1) << shift)) | (value << shift));
    return;
  }
  uint8_t* p = &block.bytes[index * (bits / 8)];
  switch (bits) {
    case 8:
      p[0] = static_cast<uint8_t>(value);
      break;
    case 16:
      StoreBe16(p, static_cast<uint16_t>(value));
      break;
    case 32:
      StoreBe32(p, static_cast<uint32_t>(value));
      break;
    default:
      StoreBe64(p, value);
      break;
  }
}

tl::expected<Refcounts::Block*, IoError> Refcounts::LoadBlock(uint64_t rt_index) {
  if (rt_index >= table_.size() || table_[rt_index] == 0) return nullptr;
  if (auto it = blocks_.find(rt_index); it != blocks_.end()) return &it->second;
  const uint64_t offset = table_[rt_index];
  struct stat st;
  if (::fstat(fd_, &st) == 0 && offset + cluster_size_ > static_cast<uint64_t>(st.st_size)) {
    return IoFail(EIO, "refcount block {} at {:#x} lies past the end of the file", rt_index,
                  offset);
  }
  if (offset < cluster_size_) {
    return IoFail(EIO, "refcount block {} at {:#x} overlaps the header", rt_index, offset);
  }
  Block block{std::vector<uint8_t>(cluster_size_)};
  if (int err = ReadFully(fd_, block.bytes.data(), cluster_size_, offset)) {
    return IoFail(err, "reading refcount block {}: {}", rt_index, strerror(err));
  }
  return &blocks_.emplace(rt_index, std::move(block)).first->second;
}

tl::expected<uint64_t, IoError> Refcounts::Get(uint64_t cluster) {
  Block* block = VIREO_TRY(LoadBlock(cluster / entries_per_block_));
  return block == nullptr ? 0 : EntryOf(*block, cluster % entries_per_block_);
}

IoStatus Refcounts::WriteEntry(uint64_t rt_index, Block& block, uint64_t index) {
  const uint32_t bits = header_.refcount_bits();
  const uint64_t byte = bits < 8 ? index / (8 / bits) : index * (bits / 8);
  const uint64_t length = bits < 8 ? 1 : bits / 8;
  if (int err = WriteFully(fd_, &block.bytes[byte], length, table_[rt_index] + byte)) {
    return IoFail(err, "writing a refcount: {}", strerror(err));
  }
  return {};
}

tl::expected<bool, IoError> Refcounts::Free(uint64_t cluster) {
  if (cluster == 0 || reserved_.count(cluster) != 0) return false;
  if (in_use_ && in_use_(cluster)) return false;
  return VIREO_TRY(Get(cluster)) == 0;
}

tl::expected<Refcounts::Block*, IoError> Refcounts::BlockFor(uint64_t cluster) {
  const uint64_t rt = cluster / entries_per_block_;
  if (rt >= table_.size()) VIREO_TRY_STATUS(GrowTable(rt + 1));
  if (table_[rt] != 0) return LoadBlock(rt);

  // A new refcount block: it takes a free cluster, which needs a refcount itself. When the
  // cluster falls in the range the block describes, the block counts itself.
  uint64_t c = free_hint_;
  while (!VIREO_TRY(Free(c))) ++c;
  reserved_.insert(c);
  Block block{std::vector<uint8_t>(cluster_size_, 0)};
  if (c / entries_per_block_ == rt) {
    SetEntry(block, c % entries_per_block_, 1);
  } else {
    auto status = Update(c * cluster_size_, 1, 1);
    if (!status) {
      reserved_.erase(c);
      return tl::unexpected(status.error());
    }
  }
  if (rt >= table_.size()) VIREO_TRY_STATUS(GrowTable(rt + 1));  // The update may have grown it.
  if (int err = WriteFully(fd_, block.bytes.data(), cluster_size_, c * cluster_size_)) {
    reserved_.erase(c);
    return IoFail(err, "writing a new refcount block: {}", strerror(err));
  }
  // The block (and its own refcount) is on disk before the table points at it.
  ::fdatasync(fd_);
  uint8_t entry[8];
  StoreBe64(entry, c * cluster_size_);
  if (int err = WriteFully(fd_, entry, 8, header_.refcount_table_offset + rt * 8)) {
    reserved_.erase(c);
    return IoFail(err, "writing the refcount table: {}", strerror(err));
  }
  table_[rt] = c * cluster_size_;
  block_offsets_.insert(c * cluster_size_);
  reserved_.erase(c);
  return &blocks_.emplace(rt, std::move(block)).first->second;
}

IoStatus Refcounts::GrowTable(uint64_t min_entries) {
  // The new table and the blocks describing it go past everything in use and past what the
  // old table covers, so they need no block the old table has.
  struct stat st;
  if (::fstat(fd_, &st) < 0) return IoFail(errno, "fstat: {}", strerror(errno));
  const uint64_t old_entries = table_.size();
  uint64_t start = std::max<uint64_t>((st.st_size + cluster_size_ - 1) / cluster_size_,
                                      old_entries * entries_per_block_);
  if (!reserved_.empty()) start = std::max(start, *reserved_.rbegin() + 1);
  uint64_t entries = std::max(min_entries, old_entries * 2);
  uint64_t table_clusters = 0;
  uint64_t first_rt = 0;
  uint64_t block_count = 0;
  for (int round = 0; round < 64; ++round) {
    table_clusters = (entries * 8 + cluster_size_ - 1) / cluster_size_;
    first_rt = start / entries_per_block_;
    block_count = 0;
    for (;;) {
      uint64_t last_rt = (start + table_clusters + block_count - 1) / entries_per_block_;
      if (last_rt - first_rt + 1 == block_count) break;
      block_count = last_rt - first_rt + 1;
    }
    if (first_rt + block_count <= entries) break;
    entries = first_rt + block_count;
  }
  entries = table_clusters * cluster_size_ / 8;
  if (table_clusters * cluster_size_ > kMaxRefcountTableBytes) {
    return IoFail(EFBIG, "the refcount table would exceed {} bytes", kMaxRefcountTableBytes);
  }

  std::vector<uint64_t> table = table_;
  table.resize(entries, 0);
  const uint64_t used_end = start + table_clusters + block_count;
  for (uint64_t i = 0; i < block_count; ++i) {
    const uint64_t rt = first_rt + i;
    const uint64_t at = start + table_clusters + i;
    Block block{std::vector<uint8_t>(cluster_size_, 0)};
    for (uint64_t c = std::max(start, rt * entries_per_block_);
         c < std::min(used_end, (rt + 1) * entries_per_block_); ++c) {
      SetEntry(block, c % entries_per_block_, 1);
    }
    if (int err = WriteFully(fd_, block.bytes.data(), cluster_size_, at * cluster_size_)) {
      return IoFail(err, "writing a refcount block: {}", strerror(err));
    }
    table[rt] = at * cluster_size_;
    block_offsets_.insert(at * cluster_size_);
    blocks_[rt] = std::move(block);
  }
  std::vector<uint8_t> raw(table_clusters * cluster_size_, 0);
  for (size_t i = 0; i < table.size(); ++i) StoreBe64(&raw[i * 8], table[i]);
  if (int err = WriteFully(fd_, raw.data(), raw.size(), start * cluster_size_)) {
    return IoFail(err, "writing the new refcount table: {}", strerror(err));
  }
  ::fdatasync(fd_);
  const uint64_t old_offset = header_.refcount_table_offset;
  const uint64_t old_clusters = header_.refcount_table_clusters;
  header_.refcount_table_offset = start * cluster_size_;
  header_.refcount_table_clusters = static_cast<uint32_t>(table_clusters);
  table_ = std::move(table);
  VIREO_TRY_STATUS(write_header_());
  // Nothing points at the old table any more.
  return Update(old_offset, old_clusters * cluster_size_, -1);
}

IoStatus Refcounts::Update(uint64_t offset, uint64_t length, int64_t delta) {
  if (length == 0 || delta == 0) return {};
  const uint64_t first = offset / cluster_size_;
  const uint64_t last = (offset + length - 1) / cluster_size_;
  for (uint64_t c = first; c <= last; ++c) {
    uint64_t value = VIREO_TRY(Get(c));
    if (delta < 0 && value < static_cast<uint64_t>(-delta)) {
      return IoFail(EIO, "refcount of cluster {:#x} would drop below zero (it is {})",
                    c * cluster_size_, value);
    }
    if (delta > 0 && max_refcount() - value < static_cast<uint64_t>(delta)) {
      return IoFail(EIO, "refcount of cluster {:#x} would overflow {} bits", c * cluster_size_,
                    header_.refcount_bits());
    }
  }
  // Entries of one block are written together: one pwrite per block touched, not per cluster.
  const uint32_t bits = header_.refcount_bits();
  auto byte_of = [bits](uint64_t index) {
    return bits < 8 ? index / (8 / bits) : index * (bits / 8);
  };
  uint64_t span_rt = ~0ull;
  uint64_t span_begin = 0;
  uint64_t span_end = 0;
  auto flush_span = [&]() -> IoStatus {
    if (span_rt == ~0ull) return {};
    Block& block = blocks_.at(span_rt);
    if (int err = WriteFully(fd_, &block.bytes[span_begin], span_end - span_begin,
                             table_[span_rt] + span_begin)) {
      return IoFail(err, "writing refcounts: {}", strerror(err));
    }
    span_rt = ~0ull;
    return {};
  };
  for (uint64_t c = first; c <= last; ++c) {
    const uint64_t rt = c / entries_per_block_;
    if (rt != span_rt) VIREO_TRY_STATUS(flush_span());
    VIREO_TRY(BlockFor(c));
    // BlockFor may have created blocks or moved the table; find the block again by index.
    Block& block = blocks_.at(rt);
    const uint64_t index = c % entries_per_block_;
    uint64_t value = EntryOf(block, index) + static_cast<uint64_t>(delta);
    SetEntry(block, index, value);
    const uint64_t begin = byte_of(index);
    const uint64_t end = begin + (bits < 8 ? 1 : bits / 8);
    if (span_rt != rt) {
      span_rt = rt;
      span_begin = begin;
    }
    span_end = end;
    if (value == 0) NoteFreed(c);
  }
  return flush_span();
}

IoStatus Refcounts::Set(uint64_t cluster, uint64_t value) {
  if (value > max_refcount()) return IoFail(EIO, "refcount {} does not fit", value);
  VIREO_TRY(BlockFor(cluster));
  const uint64_t rt = cluster / entries_per_block_;
  Block& block = blocks_.at(rt);
  SetEntry(block, cluster % entries_per_block_, value);
  VIREO_TRY_STATUS(WriteEntry(rt, block, cluster % entries_per_block_));
  if (value == 0) NoteFreed(cluster);
  return {};
}

tl::expected<uint64_t, IoError> Refcounts::Allocate(uint64_t count) {
  while (!VIREO_TRY(Free(free_hint_))) ++free_hint_;
  uint64_t start = free_hint_;
  for (uint64_t n = 0; n < count;) {
    if (VIREO_TRY(Free(start + n))) {
      ++n;
    } else {
      start = start + n + 1;
      n = 0;
    }
  }
  for (uint64_t c = start; c < start + count; ++c) reserved_.insert(c);
  // On failure some refcounts may be raised already: leaked clusters, never lost data.
  IoStatus status = Update(start * cluster_size_, count * cluster_size_, 1);
  for (uint64_t c = start; c < start + count; ++c) reserved_.erase(c);
  if (!status) return tl::unexpected(status.error());
  if (start == free_hint_) free_hint_ = start + count;
  return start * cluster_size_;
}

}  // namespace vireo::block::qcow2
