// Machine snapshot and restore: what a snapshot holds and the order it is put back in
// (docs/snapshot-migration.md). The state file's encoding lives in vmm/snapshot/.
#include <chrono>

#include "base/log.h"
#include "devices/acpi/pm_device.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial_8250.h"
#include "virtio/device.h"
#include "vmm/machine.h"
#include "vmm/snapshot/snapshot_files.h"

namespace vireo {
namespace {

tl::unexpected<ControlError> Failed(const std::string& message) {
  return tl::unexpected(ControlError{ControlError::Kind::kFailed, message});
}

// virtio devices hold queue positions, in-flight requests and host resources whose state
// is not saved yet: refuse rather than write a snapshot that would not restore faithfully.
Status CheckSnapshottable(const VmConfig& config, size_t virtio_devices) {
  if (virtio_devices > 0 || !config.disks.empty() || !config.nets.empty() || config.rng ||
      config.console || config.balloon || config.vsock) {
    return Fail(
        "VMs with virtio devices (--disk, --net, --rng, --console, --balloon, --vsock) cannot "
        "be snapshotted yet; see docs/snapshot-migration.md");
  }
  return {};
}

}  // namespace

ControlResult<SnapshotInfo> Machine::SaveSnapshot(const std::string& dir, bool diff) {
  const auto start = std::chrono::steady_clock::now();
  if (auto ok = CheckSnapshottable(config_, virtio_devices_.size()); !ok) {
    return Failed(ok.error().message);
  }
  if (diff && last_snapshot_dir_.empty()) {
    return tl::unexpected(ControlError{
        ControlError::Kind::kConflict,
        "no full snapshot was taken (or restored from) in this boot to diff against; take a "
        "full snapshot first"});
  }
  snapshot::SnapshotState state;
  state.config = config_;
  state.accelerator = accelerator_name_;
  state.type = diff ? snapshot::SnapshotType::kDiff : snapshot::SnapshotType::kFull;
  for (const GuestMemory::Region& region : memory_->regions()) state.ram.push_back(region.range);
  auto vm_state = vm_->SaveState();
  if (!vm_state) return Failed("saving the VM state: " + vm_state.error().message);
  state.vm = std::move(*vm_state);
  for (auto& vcpu : vcpus_) {
    auto saved = vcpu->SaveState();
    if (!saved) {
      return Failed(fmt::format("saving vCPU {}: {}", vcpu->id(), saved.error().message));
    }
    state.vcpus.push_back(std::move(*saved));
  }
  state.devices.com1 = persistent_.com1->state();
  state.devices.rtc = persistent_.rtc->state();
  state.devices.i8042 = i8042_->state();
  state.devices.pm = pm_->state();
  if (diff) {
    state.parent = last_snapshot_dir_;
    auto dirty = vm_->FetchDirtyPages();
    if (!dirty) return Failed("reading the dirty-page log: " + dirty.error().message);
    state.dirty = std::move(*dirty);
  }

  auto written = snapshot::WriteSnapshot(dir, state, *memory_);
  if (!written) return Failed("writing the snapshot: " + written.error().message);
  if (!diff) {
    // Pages written from now on go into the next diff.
    if (auto started = vm_->StartDirtyLog(); !started) {
      Log(LogLevel::kWarn, "diff snapshots unavailable: {}", started.error().message);
    } else if (auto cleared = vm_->FetchDirtyPages(); !cleared) {
      Log(LogLevel::kWarn, "diff snapshots unavailable: {}", cleared.error().message);
    }
  }
  char resolved[PATH_MAX];
  last_snapshot_dir_ = ::realpath(dir.c_str(), resolved) != nullptr ? resolved : dir;

  SnapshotInfo info;
  info.path = dir;
  info.type = diff ? "diff" : "full";
  info.memory_bytes_written = written->memory_bytes_written;
  info.state_bytes = written->state_bytes;
  info.microseconds = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                                std::chrono::steady_clock::now() - start)
                                                .count());
  return info;
}

Result<std::unique_ptr<Machine>> Machine::Restore(const VmConfig& config,
                                                  accel::Accelerator& accelerator,
                                                  PersistentDevices& persistent,
                                                  snapshot::LoadedSnapshot& snap) {
  const snapshot::SnapshotState& state = snap.state;
  VIREO_TRY_STATUS(CheckSnapshottable(config, 0));
  if (static_cast<size_t>(config.cpus) != state.vcpus.size()) {
    return Fail("the snapshot has {} vCPU states for {} vCPUs", state.vcpus.size(), config.cpus);
  }
  std::unique_ptr<Machine> m(new Machine(config, persistent));
  m->memory_.emplace(std::move(*snap.memory));
  snap.memory.reset();
  m->vm_ = VIREO_TRY(accelerator.CreateVm(config.cpus));
  m->accelerator_name_ = accelerator.name();
  VIREO_TRY_STATUS(m->vm_->MapMemory(*m->memory_));
  m->io_loop_ = VIREO_TRY(EventLoop::Create("vireo-io"));
  VIREO_TRY_STATUS(m->io_loop_->Start());
  VIREO_TRY_STATUS(m->BuildDevices());
  m->boot_entry_.description = fmt::format("restored from snapshot {}", snap.dir);

  // vCPUs exist before the VM's interrupt controllers are restored (the IOAPIC and PIC
  // state is then delivered to them), and each vCPU's own state goes in last.
  for (int id = 0; id < config.cpus; ++id) {
    m->vcpus_.push_back(VIREO_TRY(m->vm_->CreateVcpu(id)));
  }
  if (auto restored = m->vm_->RestoreState(state.vm); !restored) {
    return Wrap("restoring the VM's interrupt controllers, PIT and clock", restored.error());
  }
  for (size_t i = 0; i < m->vcpus_.size(); ++i) {
    if (auto restored = m->vcpus_[i]->RestoreState(state.vcpus[i]); !restored) {
      return Wrap(fmt::format("restoring vCPU {}", i), restored.error());
    }
  }
  m->counters_.resize(m->vcpus_.size());

  VIREO_TRY_STATUS(persistent.com1->RestoreState(state.devices.com1));
  VIREO_TRY_STATUS(persistent.rtc->RestoreState(state.devices.rtc));
  VIREO_TRY_STATUS(m->i8042_->RestoreState(state.devices.i8042));
  VIREO_TRY_STATUS(m->pm_->RestoreState(state.devices.pm));

  // A diff snapshot of this machine applies on top of the one it was restored from.
  if (m->vm_->StartDirtyLog() && m->vm_->FetchDirtyPages()) {
    char resolved[PATH_MAX];
    m->last_snapshot_dir_ = ::realpath(snap.dir.c_str(), resolved) != nullptr ? resolved : snap.dir;
  }
  return m;
}

}  // namespace vireo
