// A snapshot directory on disk: writing the `state` and `memory` files, and loading a
// snapshot (and the chain of diffs it sits on) back into guest memory.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "accel/accelerator.h"
#include "base/result.h"
#include "memory/guest_memory.h"
#include "vmm/snapshot/state_file.h"

namespace vireo::snapshot {

struct WriteStats {
  uint64_t memory_bytes_written = 0;  // page data written (holes and clean pages not counted)
  uint64_t state_bytes = 0;
};

// Writes `state` and the memory it describes into `dir` (created if missing). A full
// snapshot writes every non-zero page of `memory`; a diff, the pages its bitmaps mark. Each
// file is written beside its final name and renamed into place, memory first, so a
// directory never holds a state file without its memory, and a memory file that backs a
// running (restored) VM is never overwritten in place.
Result<WriteStats> WriteSnapshot(const std::string& dir, const SnapshotState& state,
                                 const GuestMemory& memory);

// Reads and checks `dir`/state alone.
Result<SnapshotState> ReadStateFile(const std::string& dir);

struct LoadedSnapshot {
  std::string dir;      // as given
  SnapshotState state;  // the snapshot asked for (the newest of its chain)
  std::optional<GuestMemory> memory;
  // A migration's destination creates the VM and gives it `memory` while pages still arrive,
  // so Machine::Restore does not do it inside the downtime; null: Restore creates it.
  std::unique_ptr<accel::Vm> vm;
  size_t chain_length = 1;  // 1 for a full snapshot, +1 per diff on top
};

// Follows a diff's parents down to its full snapshot (at most kMaxChainDepth), maps the full
// snapshot's memory file copy-on-write and applies each diff's pages, oldest first.
Result<LoadedSnapshot> LoadSnapshot(const std::string& dir);

}  // namespace vireo::snapshot
