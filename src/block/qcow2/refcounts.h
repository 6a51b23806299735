// Refcounts: the refcount table and refcount blocks, and cluster allocation on top of them.
// Every allocated cluster of the image file (header, tables, data) has a refcount: how many
// references point at it. Blocks are loaded on first use and kept; updates are written
// through at once, so the on-disk refcounts are never below what the file references as
// long as callers write a refcount before they write a reference to it (see qcow2_image.h).
// Not thread-safe: the caller holds the image's metadata lock.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <vector>

#include "block/image.h"
#include "block/qcow2/header.h"

namespace vireo::block::qcow2 {

class Refcounts {
 public:
  // header is the image's, updated in place (and rewritten through write_header) when the
  // refcount table moves.
  Refcounts(int fd, Header& header, std::function<IoStatus()> write_header);

  IoStatus Load();

  uint64_t max_refcount() const {
    return header_.refcount_order == 6 ? ~0ull : (1ull << header_.refcount_bits()) - 1;
  }
  // The refcount of the cluster with this index (host offset / cluster size).
  tl::expected<uint64_t, IoError> Get(uint64_t cluster);
  // Adds delta to the refcount of every cluster touching [offset, offset + length).
  // Refuses an overflow or a drop below zero before changing anything.
  IoStatus Update(uint64_t offset, uint64_t length, int64_t delta);
  // Sets one cluster's refcount (repair).
  IoStatus Set(uint64_t cluster, uint64_t value);

  // Allocates `count` contiguous clusters with refcount 1; returns the host offset of the
  // first. Writes the refcounts; the caller makes them durable (Barrier) before pointing at
  // the clusters.
  tl::expected<uint64_t, IoError> Allocate(uint64_t count);
  // Lowest cluster index worth scanning for free space.
  void NoteFreed(uint64_t cluster) { free_hint_ = std::min(free_hint_, cluster); }

  // During a repair: clusters the walk found in use, even where their refcount says free.
  void SetInUse(std::function<bool(uint64_t cluster)> in_use) { in_use_ = std::move(in_use); }

  const std::vector<uint64_t>& table() const { return table_; }
  // Whether a refcount block starts at this host offset.
  bool IsBlock(uint64_t offset) const { return block_offsets_.count(offset) != 0; }
  uint64_t entries_per_block() const { return entries_per_block_; }

 private:
  struct Block {
    std::vector<uint8_t> bytes;
  };
  uint64_t EntryOf(const Block& block, uint64_t index) const;
  void SetEntry(Block& block, uint64_t index, uint64_t value);
  // The refcount block for table index rt_index, or null when it has none (all zero).
  tl::expected<Block*, IoError> LoadBlock(uint64_t rt_index);
  // Makes sure the block for cluster exists, creating it (and growing the table) if needed.
  tl::expected<Block*, IoError> BlockFor(uint64_t cluster);
  IoStatus WriteEntry(uint64_t rt_index, Block& block, uint64_t index);
  IoStatus GrowTable(uint64_t min_entries);
  // Whether the cluster can be allocated; an unreadable refcount block is an error, not "in
  // use", so a damaged image is never scanned past and grown without bound.
  tl::expected<bool, IoError> Free(uint64_t cluster);

  int fd_;
  Header& header_;
  std::function<IoStatus()> write_header_;
  uint64_t cluster_size_;
  uint64_t entries_per_block_;
  std::vector<uint64_t> table_;       // Host order; 0 = no block.
  std::map<uint64_t, Block> blocks_;  // By table index.
  std::set<uint64_t> reserved_;       // Clusters being turned into refcount blocks.
  std::set<uint64_t> block_offsets_;  // Host offsets of every refcount block.
  uint64_t free_hint_ = 0;
  std::function<bool(uint64_t)> in_use_;
};

}  // namespace vireo::block::qcow2
