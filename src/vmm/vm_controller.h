// VmController: what the control API (src/api) asks of a running VM, and nothing about
// HTTP. The API holds only this interface, so snapshot/restore and migration join later
// as further calls here without the server changing shape, and tests use a fake.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

#include "vmm/exit_stats.h"
#include "vmm/vm_state.h"

namespace vireo {

struct ControlError {
  enum class Kind {
    kConflict,  // not allowed in the VM's current state (HTTP 409)
    kFailed,    // allowed, but it did not work (HTTP 500)
  };
  Kind kind = Kind::kFailed;
  std::string message;
};

template <typename T>
using ControlResult = tl::expected<T, ControlError>;

// The configuration summary and state GET /vm answers with.
struct VmInfo {
  VmState state = VmState::kRunning;
  int vcpus = 0;
  uint64_t memory_bytes = 0;
  std::string kernel;  // a path, or "built-in" for the default guest
  std::string cmdline;
  std::string transport;             // "pci" or "mmio"
  std::vector<std::string> devices;  // virtio devices by name, in bus order
  uint64_t boots = 0;                // 1 for the first boot; +1 per guest or API reset
};

// One device's I/O counters, as name/value pairs so the API needs no device headers.
struct DeviceCounters {
  std::string device;  // "blk0", "net0", ...
  std::vector<std::pair<std::string, uint64_t>> values;
};

// Counters since the current boot began.
struct VmCounters {
  std::vector<VcpuCounters> vcpus;  // index = vCPU id
  std::vector<DeviceCounters> devices;
};

// PUT /vm/snapshot: what was written.
struct SnapshotInfo {
  std::string path;
  std::string type;  // "full" or "diff"
  uint64_t memory_bytes_written = 0;
  uint64_t state_bytes = 0;
  uint64_t microseconds = 0;  // time the VM spent taking it
};

class VmController {
 public:
  virtual ~VmController() = default;
  virtual ControlResult<VmInfo> Info() = 0;
  virtual ControlResult<VmCounters> Counters() = 0;
  // Pause, resume, shutdown (ACPI power button), reset or stop; returns the new state.
  virtual ControlResult<VmState> Apply(VmAction action) = 0;
  // Writes a snapshot of the paused VM into the directory `path` (docs/snapshot-migration.md).
  virtual ControlResult<SnapshotInfo> Snapshot(const std::string& /*path*/, bool /*diff*/) {
    return tl::unexpected(ControlError{ControlError::Kind::kFailed, "snapshots are not supported"});
  }
};

}  // namespace vireo
