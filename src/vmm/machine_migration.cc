// The running Machine as a live-migration source (vmm/migration/sender.h): its memory, the
// dirty log, pause/resume, and its state encoded as a snapshot state file (the same fields and
// order as machine_snapshot.cc writes, docs/snapshot-migration.md).
#include <fmt/format.h>

#include "base/log.h"
#include "devices/acpi/pm_device.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial_8250.h"
#include "vmm/device_counters.h"
#include "vmm/machine.h"
#include "vmm/machine_controller.h"
#include "vmm/migration/sender.h"
#include "vmm/snapshot/state_file.h"

namespace vireo {

class MachineMigrationSource final : public migration::MigrationSource {
 public:
  explicit MachineMigrationSource(Machine& machine) : m_(machine) {}

  const GuestMemory& memory() const override { return *m_.memory_; }
  Status StartDirtyLog() override { return m_.vm_->StartDirtyLog(); }
  Result<std::vector<std::vector<uint64_t>>> FetchDirtyPages() override {
    return m_.vm_->FetchDirtyPages();
  }
  Status Pause() override { return m_.Pause(MachineController::kPauseTimeout); }
  void Resume() override { m_.Resume(); }

  Result<std::vector<uint8_t>> SaveState() override {
    auto state = m_.CaptureState();
    if (!state) return tl::unexpected(state.error());
    return snapshot::EncodeStateFile(*state);
  }

  void Finish(const std::string& detail) override {
    m_.RequestStop({StopReason::kMigrated, 0, detail});
  }

 private:
  Machine& m_;
};

Result<std::unique_ptr<migration::MigrationSource>> Machine::NewMigrationSource() {
  // The devices snapshots refuse (CheckSnapshottable), for the same reasons. A disk is
  // re-opened by path on the destination, so it must be the same file there (shared storage
  // or localhost): block migration is not implemented.
  if (auto ok = CheckSnapshottable(config_); !ok) {
    return Fail("this VM cannot be migrated: {}", ok.error().message);
  }
  // The migration reads and clears the dirty log, so a later diff snapshot would miss pages.
  last_snapshot_dir_.clear();
  return std::unique_ptr<migration::MigrationSource>(new MachineMigrationSource(*this));
}

}  // namespace vireo
