// The internal snapshot table: one entry per snapshot, each with its own copy of the L1 table
// (qcow2.txt, "Snapshots"). Parsing validates every entry against the file.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace vireo::block::qcow2 {

struct SnapshotEntry {
  uint64_t l1_table_offset = 0;
  uint32_t l1_size = 0;
  std::string id;
  std::string name;
  uint32_t date_sec = 0;
  uint32_t date_nsec = 0;
  uint64_t vm_clock_nsec = 0;
  uint64_t vm_state_size = 0;
  uint64_t disk_size = 0;
  std::vector<uint8_t> extra;  // Extra data as stored (at least 16 bytes when written).
};

// Parses nb entries from bytes (read from the table's offset to the end of the file, at
// most). cluster_size and file_size validate each snapshot's L1 table.
Result<std::vector<SnapshotEntry>> ParseSnapshotTable(std::span<const uint8_t> bytes, uint32_t nb,
                                                      uint32_t cluster_size, uint64_t file_size);
std::vector<uint8_t> SerializeSnapshotTable(const std::vector<SnapshotEntry>& entries);

}  // namespace vireo::block::qcow2
