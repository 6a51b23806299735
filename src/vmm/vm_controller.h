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
    kInvalid,   // a value in the request is out of range for this VM (HTTP 400)
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
  std::string accelerator;           // "kvm" or "emu"
  std::string irqchip;               // "kernel" or "split" (KVM), "vireo" (the software CPU)
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

// {"postcopy": true} without "postcopy_after_rounds": the rounds pre-copy gets to converge.
inline constexpr uint64_t kDefaultPostcopyAfterRounds = 3;

// PUT /vm/migrate: where to and how (docs/snapshot-migration.md, "Live migration").
struct MigrationRequest {
  std::string uri;                 // tcp:HOST:PORT, where `vireo run --incoming` listens
  uint64_t max_downtime_ms = 300;  // pre-copy until the rest fits in this (estimated)
  uint64_t bandwidth_mbps = 0;     // megabits per second; 0 = as fast as the link goes
  bool block = false;              // copy the disks' contents too (disks not shared)
  // Switch to post-copy when pre-copy has not converged after this many rounds (the
  // destination runs the guest and fetches the rest on demand); 0 = never.
  uint64_t postcopy_after_rounds = 0;
};

// GET /vm/migrate: the last migration's progress, or its final stats.
struct MigrationInfo {
  std::string state = "none";  // none, active, completed, failed
  std::string phase;           // connecting, block copy, pre-copy, stop-and-copy, waiting for the
                               // destination, post-copy
  std::string uri;
  uint64_t max_downtime_ms = 0;
  uint64_t bandwidth_limit_mbps = 0;
  uint64_t rounds = 0;                  // pre-copy rounds (the first sends all of RAM)
  uint64_t pages_sent = 0;              // including zero pages sent as such
  uint64_t bytes_sent = 0;              // on the wire
  uint64_t remaining_pages = 0;         // dirty and not yet sent, at the last count
  uint64_t dirty_pages_per_second = 0;  // in the last pre-copy round
  uint64_t measured_mbps = 0;           // the link as measured in the last round
  uint64_t expected_downtime_ms = 0;    // remaining pages at the measured rate
  uint64_t downtime_ms = 0;             // pause to the destination's acknowledgement
  uint64_t total_ms = 0;
  // Block migration: the disks' total size, the disk bytes sent (zero chunks included, each
  // re-send counted), and what is still to send (the first copy's rest, then dirty chunks).
  bool block = false;
  uint64_t disk_bytes_total = 0;
  uint64_t disk_bytes_sent = 0;
  uint64_t disk_bytes_remaining = 0;
  // Post-copy: the rounds after which it switches (0 = not asked for); after the switch, the
  // pages the destination lacked, those sent since, those it asked for on a fault, the time
  // from the switch to the last page (so far, while it runs).
  uint64_t postcopy_after_rounds = 0;
  bool postcopy_switched = false;
  uint64_t postcopy_pages = 0;
  uint64_t postcopy_pages_sent = 0;
  uint64_t postcopy_requests = 0;
  uint64_t postcopy_ms = 0;
  std::string error;  // why it failed; the VM runs on here (or, after a post-copy switch, is
                      // paused here: see docs/snapshot-migration.md)
};

// GET/PUT /vm/balloon: the virtio-balloon's size (virtio 1.2, 5.5.4), in bytes of 4 KiB pages.
struct BalloonInfo {
  uint64_t target_bytes = 0;  // num_pages: the memory the guest is asked to give back
  uint64_t actual_bytes = 0;  // actual: what the guest's driver reports it has given back
  uint64_t memory_bytes = 0;  // the VM's RAM, the largest target
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
  // Starts a live migration of the running VM and returns at once; MigrationStatus follows it.
  virtual ControlResult<MigrationInfo> Migrate(const MigrationRequest& /*request*/) {
    return tl::unexpected(ControlError{ControlError::Kind::kFailed, "migration is not supported"});
  }
  virtual ControlResult<MigrationInfo> MigrationStatus() { return MigrationInfo{}; }
  // The balloon's target and actual size; 409 (kConflict) when the VM has none.
  virtual ControlResult<BalloonInfo> BalloonStatus() {
    return tl::unexpected(ControlError{ControlError::Kind::kConflict, "the VM has no balloon"});
  }
  // Sets the balloon's target (a multiple of 4 KiB, at most the VM's RAM) and tells the
  // driver; the guest inflates or deflates in its own time.
  virtual ControlResult<BalloonInfo> SetBalloonTarget(uint64_t /*target_bytes*/) {
    return tl::unexpected(ControlError{ControlError::Kind::kConflict, "the VM has no balloon"});
  }
};

}  // namespace vireo
