// MachineController: the VmController over the Machine that is running now. It outlives
// each Machine (a reset builds a new one): the CLI attaches a Machine for its Run() and
// detaches it before destroying it. One mutex serialises every control call, so concurrent
// API clients see one action at a time, and Detach cannot pull a Machine from under one.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>

#include "vmm/vm_config.h"
#include "vmm/vm_controller.h"

namespace vireo {

class Machine;
namespace migration {
class OutgoingMigration;
}  // namespace migration

class MachineController final : public VmController {
 public:
  static constexpr std::chrono::milliseconds kPauseTimeout{5000};

  explicit MachineController(VmConfig config);
  ~MachineController() override;

  // `paused`: the machine starts paused (a restore with --paused).
  void Attach(Machine& machine, bool paused = false);
  void Detach();

  ControlResult<VmInfo> Info() override;
  ControlResult<VmCounters> Counters() override;
  ControlResult<VmState> Apply(VmAction action) override;
  ControlResult<SnapshotInfo> Snapshot(const std::string& path, bool diff) override;
  ControlResult<MigrationInfo> Migrate(const MigrationRequest& request) override;
  ControlResult<MigrationInfo> MigrationStatus() override;
  ControlResult<BalloonInfo> BalloonStatus() override;
  ControlResult<BalloonInfo> SetBalloonTarget(uint64_t target_bytes) override;

 private:
  VmState StateLocked();

  const VmConfig config_;
  std::mutex mu_;
  Machine* machine_ = nullptr;          // guarded by mu_
  VmState state_ = VmState::kStopping;  // guarded by mu_
  uint64_t boots_ = 0;                  // guarded by mu_
  // The balloon target set through the API, applied again to the machine a reset builds
  // (its new balloon device starts at 0).
  uint64_t balloon_target_pages_ = 0;  // guarded by mu_
  // The migration in progress (or the last one); its thread never takes mu_, so Detach can
  // cancel and join it while holding mu_.
  std::unique_ptr<migration::OutgoingMigration> migration_;  // guarded by mu_
  std::optional<MigrationInfo> last_migration_;              // guarded by mu_, after Detach
};

}  // namespace vireo
