#include "vmm/machine_controller.h"

#include "vmm/machine.h"
#include "vmm/migration/sender.h"

namespace vireo {
namespace {

constexpr uint64_t kBalloonPageSize = 4096;  // virtio 1.2, 5.5.6: PFNs are 4 KiB units

tl::unexpected<ControlError> Conflict(std::string message) {
  return tl::unexpected(ControlError{ControlError::Kind::kConflict, std::move(message)});
}

}  // namespace

MachineController::MachineController(VmConfig config) : config_(std::move(config)) {}

MachineController::~MachineController() = default;

void MachineController::Attach(Machine& machine, bool paused) {
  std::lock_guard lock(mu_);
  machine_ = &machine;
  state_ = paused ? VmState::kPaused : VmState::kRunning;
  ++boots_;
  if (balloon_target_pages_ != 0) (void)machine.SetBalloonTarget(balloon_target_pages_);
}

void MachineController::Detach() {
  std::lock_guard lock(mu_);
  if (migration_) {  // the machine is going away: a migration still running ends here
    migration_->Cancel();
    migration_->Join();
    last_migration_ = migration_->info();
    migration_.reset();
  }
  machine_ = nullptr;
  state_ = VmState::kStopping;
}

VmState MachineController::StateLocked() {
  // A post-copy migration that failed after its switch leaves the machine paused (it holds the
  // only whole copy of the memory): from then on the API sees it paused, for resume or stop.
  if (migration_ && migration_->TakeLeftPaused()) state_ = VmState::kPaused;
  // The guest (S5, reset) or a signal may have stopped the machine behind the API's back.
  if (machine_ == nullptr || machine_->stopping()) return VmState::kStopping;
  return state_;
}

ControlResult<VmInfo> MachineController::Info() {
  std::lock_guard lock(mu_);
  VmInfo info;
  info.state = StateLocked();
  info.vcpus = config_.cpus;
  info.memory_bytes = config_.memory;
  info.kernel = config_.kernel_path.value_or("built-in");
  info.cmdline = config_.cmdline;
  info.transport = config_.transport == VirtioTransport::kPci ? "pci" : "mmio";
  if (machine_ != nullptr) {
    info.devices = machine_->DeviceNames();
    info.accelerator = machine_->accelerator_name();
  }
  info.irqchip = info.accelerator == "emu"                ? "vireo"
                 : config_.irqchip == IrqchipMode::kSplit ? "split"
                                                          : "kernel";
  info.boots = boots_;
  return info;
}

ControlResult<VmCounters> MachineController::Counters() {
  std::lock_guard lock(mu_);
  if (machine_ == nullptr)
    return Conflict("the VM is not running (starting, restarting or stopped)");
  return VmCounters{machine_->LiveCounters(), machine_->LiveDeviceCounters()};
}

ControlResult<VmState> MachineController::Apply(VmAction action) {
  std::lock_guard lock(mu_);
  if (migration_ && migration_->active() && action != VmAction::kStop) {
    return Conflict("a migration is in progress (GET /vm/migrate follows it)");
  }
  auto next = Transition(StateLocked(), action);
  if (!next) return Conflict(next.error());
  switch (action) {
    case VmAction::kPause:
      if (auto paused = machine_->Pause(kPauseTimeout); !paused) {
        return tl::unexpected(
            ControlError{ControlError::Kind::kFailed, "pause failed: " + paused.error().message});
      }
      break;
    case VmAction::kResume:
      machine_->Resume();
      break;
    case VmAction::kShutdown:
      machine_->PressPowerButton();
      break;
    case VmAction::kReset:
      // The stop path releases a paused machine; the CLI then boots a new one (or ends
      // with --no-reboot), as for a guest reset.
      machine_->RequestStop({StopReason::kReset, 0, "api"});
      break;
    case VmAction::kStop:
      machine_->RequestStop({StopReason::kApiStop, 0, "api"});
      break;
  }
  state_ = *next;
  return state_;
}

ControlResult<SnapshotInfo> MachineController::Snapshot(const std::string& path, bool diff) {
  std::lock_guard lock(mu_);
  const VmState state = StateLocked();
  if (migration_ && migration_->active()) {
    return Conflict("a migration is in progress (GET /vm/migrate follows it)");
  }
  if (state != VmState::kPaused) {
    return Conflict(
        fmt::format("the VM is {}; pause it first (PUT /vm/pause)", VmStateName(state)));
  }
  return machine_->SaveSnapshot(path, diff);
}

ControlResult<MigrationInfo> MachineController::Migrate(const MigrationRequest& request) {
  std::lock_guard lock(mu_);
  if (migration_ && migration_->active()) {
    return Conflict("a migration is already in progress (GET /vm/migrate follows it)");
  }
  const VmState state = StateLocked();
  if (state != VmState::kRunning) {
    return Conflict(fmt::format("the VM is {}; only a running VM is migrated (resume it first)",
                                VmStateName(state)));
  }
  auto source = machine_->NewMigrationSource();
  if (!source) {
    return tl::unexpected(ControlError{ControlError::Kind::kFailed, source.error().message});
  }
  migration_.reset();  // the previous, finished one
  migration_ = std::make_unique<migration::OutgoingMigration>(std::move(*source), request);
  // The 202 answer says what started ("active"), even if the thread fails at once (a refused
  // connect); GET /vm/migrate reports the outcome.
  const MigrationInfo started = migration_->info();
  migration_->Start();
  return started;
}

ControlResult<MigrationInfo> MachineController::MigrationStatus() {
  std::lock_guard lock(mu_);
  if (migration_) return migration_->info();
  return last_migration_.value_or(MigrationInfo{});
}

}  // namespace vireo

namespace vireo {

ControlResult<BalloonInfo> MachineController::BalloonStatus() {
  std::lock_guard lock(mu_);
  if (!config_.balloon) return Conflict("the VM has no balloon device (start it with --balloon)");
  if (machine_ == nullptr) {
    return Conflict("the VM is not running (starting, restarting or stopped)");
  }
  const auto [target, actual] = machine_->BalloonPages();
  return BalloonInfo{target * kBalloonPageSize, actual * kBalloonPageSize, config_.memory};
}

ControlResult<BalloonInfo> MachineController::SetBalloonTarget(uint64_t target_bytes) {
  {
    std::lock_guard lock(mu_);
    if (!config_.balloon) {
      return Conflict("the VM has no balloon device (start it with --balloon)");
    }
    if (machine_ == nullptr) {
      return Conflict("the VM is not running (starting, restarting or stopped)");
    }
    if (target_bytes % kBalloonPageSize != 0) {
      return tl::unexpected(
          ControlError{ControlError::Kind::kInvalid,
                       fmt::format("target_bytes {} is not a multiple of 4096 (the balloon's page)",
                                   target_bytes)});
    }
    if (target_bytes > config_.memory) {
      return tl::unexpected(
          ControlError{ControlError::Kind::kInvalid,
                       fmt::format("target_bytes {} is above the VM's memory ({} bytes)",
                                   target_bytes, config_.memory)});
    }
    if (auto set = machine_->SetBalloonTarget(target_bytes / kBalloonPageSize); !set) {
      return tl::unexpected(ControlError{ControlError::Kind::kFailed, set.error().message});
    }
    balloon_target_pages_ = target_bytes / kBalloonPageSize;
  }
  return BalloonStatus();
}

}  // namespace vireo
