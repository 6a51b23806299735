// The running Machine as a live-migration source (vmm/migration/sender.h): its memory, the
// dirty log, pause/resume, and its state encoded as a snapshot state file (the same fields and
// order as machine_snapshot.cc writes, docs/snapshot-migration.md).
#include <fmt/format.h>

#include "base/log.h"
#include "block/image_backend.h"
#include "block/raw_image.h"
#include "devices/acpi/pm_device.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial_8250.h"
#include "virtio/blk.h"
#include "vmm/device_counters.h"
#include "vmm/machine.h"
#include "vmm/machine_controller.h"
#include "vmm/migration/sender.h"
#include "vmm/snapshot/state_file.h"

namespace vireo {
namespace {

// A virtio-blk disk for block migration. Reads go through the device's own Image where its
// backend has one (qcow2: the metadata the device is changing lives there), else through a
// second, unlocked descriptor of the raw file (coherent with the device's writes through the
// page cache, O_DIRECT ones included).
class BlkDiskSource final : public migration::DiskSource {
 public:
  BlkDiskSource(virtio::Blk& blk, block::Image& image, std::unique_ptr<block::Image> owned)
      : blk_(blk), image_(image), owned_(std::move(owned)) {}
  block::DirtyChunkMap& dirty() override { return blk_.dirty_chunks(); }
  Status Read(uint64_t offset, std::span<uint8_t> out) override {
    if (auto read = image_.Read(offset, out); !read) return Fail("{}", read.error().message);
    return {};
  }

 private:
  virtio::Blk& blk_;
  block::Image& image_;
  std::unique_ptr<block::Image> owned_;
};

}  // namespace

class MachineMigrationSource final : public migration::MigrationSource {
 public:
  explicit MachineMigrationSource(Machine& machine) : m_(machine) {}

  const GuestMemory& memory() const override { return *m_.memory_; }
  Status StartDirtyLog() override { return m_.StartDirtyLog(); }
  Result<std::vector<std::vector<uint64_t>>> FetchDirtyPages() override {
    return m_.FetchDirtyPages();
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

  // The disks are the first virtio devices, in configuration order (CreateVirtioDevices).
  Result<std::vector<std::unique_ptr<migration::DiskSource>>> OpenDisks() override {
    std::vector<std::unique_ptr<migration::DiskSource>> disks;
    for (size_t i = 0; i < m_.config_.disks.size(); ++i) {
      auto* blk = dynamic_cast<virtio::Blk*>(
          i < m_.virtio_devices_.size() ? m_.virtio_devices_[i].get() : nullptr);
      if (blk == nullptr) return Fail("block migration: disk {} has no virtio-blk device", i);
      if (auto* backend = dynamic_cast<block::ImageBackend*>(&blk->backend())) {
        disks.push_back(std::make_unique<BlkDiskSource>(*blk, backend->image(), nullptr));
        continue;
      }
      const std::string& path = m_.config_.disks[i].path;
      auto raw = block::RawImage::Open(path, /*read_only=*/true, /*lock=*/false);
      if (!raw)
        return Wrap(fmt::format("block migration: opening --disk path={}", path), raw.error());
      block::Image& image = **raw;
      disks.push_back(std::make_unique<BlkDiskSource>(*blk, image, std::move(*raw)));
    }
    return disks;
  }

 private:
  Machine& m_;
};

Result<std::unique_ptr<migration::MigrationSource>> Machine::NewMigrationSource() {
  // The devices snapshots refuse (CheckSnapshottable), for the same reasons. A disk is
  // re-opened by path on the destination: the same file (shared storage), or with block
  // migration the image the destination's --disk names, filled from this one (OpenDisks).
  if (auto ok = CheckSnapshottable(config_); !ok) {
    return Fail("this VM cannot be migrated: {}", ok.error().message);
  }
  // The migration reads and clears the dirty log, so a later diff snapshot would miss pages.
  last_snapshot_dir_.clear();
  return std::unique_ptr<migration::MigrationSource>(new MachineMigrationSource(*this));
}

}  // namespace vireo
