// Machine snapshot and restore: what a snapshot holds and the order it is put back in
// (docs/snapshot-migration.md). The state file's encoding lives in vmm/snapshot/.
#include <net/if.h>

#include <chrono>

#include "base/log.h"
#include "devices/acpi/pm_device.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial_8250.h"
#include "devices/pci/config_access.h"
#include "virtio/balloon/balloon.h"
#include "virtio/device.h"
#include "virtio/mmio_transport.h"
#include "virtio/net/net.h"
#include "virtio/pci_transport.h"
#include "virtio/vsock/vsock.h"
#include "vmm/device_counters.h"
#include "vmm/machine.h"
#include "vmm/snapshot/snapshot_files.h"

namespace vireo {
namespace {

tl::unexpected<ControlError> Failed(const std::string& message) {
  return tl::unexpected(ControlError{ControlError::Kind::kFailed, message});
}

// The virtio devices' own state beyond their transports (device records), in the order
// CreateVirtioDevices makes them.
template <typename T>
std::vector<T*> DevicesOf(const std::vector<std::shared_ptr<virtio::VirtioDevice>>& devices) {
  std::vector<T*> out;
  for (const auto& device : devices) {
    if (auto* d = dynamic_cast<T*>(device.get())) out.push_back(d);
  }
  return out;
}

// virtio-blk, virtio-rng and virtio-console keep their guest-visible state in the transport
// and the rings (blk's requests are drained by Pause; console input still queued on the host
// side is dropped); net, balloon and vsock add device records (vsock's host connections are
// not carried: the guest gets a transport reset).
}  // namespace

Status CheckSnapshottable(const VmConfig& /*config*/) {
  // Every device a VmConfig can ask for has its state in a snapshot now
  // (docs/snapshot-migration.md lists what is re-created or dropped instead). A device added
  // without saved state must be refused here, by its option's name.
  return {};
}

ControlResult<SnapshotInfo> Machine::SaveSnapshot(const std::string& dir, bool diff) {
  const auto start = std::chrono::steady_clock::now();
  if (auto ok = CheckSnapshottable(config_); !ok) return Failed(ok.error().message);
  if (diff && last_snapshot_dir_.empty()) {
    return tl::unexpected(ControlError{
        ControlError::Kind::kConflict,
        "no full snapshot was taken (or restored from) in this boot to diff against; take a "
        "full snapshot first"});
  }
  auto captured = CaptureState();
  if (!captured) return Failed(captured.error().message);
  snapshot::SnapshotState state = std::move(*captured);
  state.type = diff ? snapshot::SnapshotType::kDiff : snapshot::SnapshotType::kFull;
  if (diff) {
    state.parent = last_snapshot_dir_;
    auto dirty = FetchDirtyPages();
    if (!dirty) return Failed("reading the dirty-page log: " + dirty.error().message);
    state.dirty = std::move(*dirty);
  }

  auto written = snapshot::WriteSnapshot(dir, state, *memory_);
  if (!written) return Failed("writing the snapshot: " + written.error().message);
  if (!diff) {
    // Pages written from now on go into the next diff.
    if (auto started = StartDirtyLog(); !started) {
      Log(LogLevel::kWarn, "diff snapshots unavailable: {}", started.error().message);
    } else if (auto cleared = FetchDirtyPages(); !cleared) {
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
  VIREO_TRY_STATUS(CheckSnapshottable(config));
  if (static_cast<size_t>(config.cpus) != state.vcpus.size()) {
    return Fail("the snapshot has {} vCPU states for {} vCPUs", state.vcpus.size(), config.cpus);
  }
  std::unique_ptr<Machine> m(new Machine(config, persistent));
  m->memory_.emplace(std::move(*snap.memory));
  snap.memory.reset();
  if (snap.vm) {  // created ahead, with this memory (a migration's destination)
    m->vm_ = std::move(snap.vm);
  } else {
    m->vm_ = VIREO_TRY(accelerator.CreateVm(config.cpus));
    VIREO_TRY_STATUS(m->vm_->MapMemory(*m->memory_));
  }
  m->accelerator_name_ = accelerator.name();
  m->io_loop_ = VIREO_TRY(EventLoop::Create("vireo-io"));
  VIREO_TRY_STATUS(m->io_loop_->Start());
  VIREO_TRY_STATUS(m->BuildDevices());
  // Taps are re-attached, never created: a new tap would not be on the guest's network.
  for (const NetConfig& net : config.nets) {
    if (::if_nametoindex(net.tap.c_str()) == 0) {
      return Fail(
          "the snapshot's network device uses tap '{}', which does not exist here: a restore "
          "re-attaches taps by name and does not create them. Create it on the guest's network "
          "as before (e.g. ip tuntap add dev {} mode tap vnet_hdr; ip link set {} master BRIDGE "
          "up) and restore again, or name a tap that is there with --net tap=NAME",
          net.tap, net.tap, net.tap);
    }
  }
  // The same devices as at boot, re-attached by path (disks) and name (taps) from the saved
  // configuration.
  auto devices = m->CreateVirtioDevices();
  if (!devices) return Wrap("re-creating the snapshot's virtio devices", devices.error());
  m->virtio_devices_ = std::move(*devices);
  VIREO_TRY_STATUS(config.transport == VirtioTransport::kMmio
                       ? m->AttachVirtioMmio(m->virtio_devices_)
                       : m->AttachVirtioPci(m->virtio_devices_));
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
  // After the VM's interrupt controllers: a level interrupt the HPET held is asserted again.
  if (m->hpet_ != nullptr) {
    if (!state.devices.hpet) return Fail("the snapshot's VM has an HPET but no HPET state");
    if (auto restored = m->hpet_->RestoreState(*state.devices.hpet); !restored) {
      return Wrap("restoring the HPET", restored.error());
    }
  }
  if (auto restored = m->RestoreVirtioState(state.devices.virtio); !restored) {
    return Wrap("restoring the virtio devices", restored.error());
  }

  // A diff snapshot of this machine applies on top of the one it was restored from. A VM that
  // arrived by migration (no directory) has none to diff against, and starting the log costs
  // milliseconds per GiB inside the migration's downtime, so it is left off.
  if (!snap.dir.empty() && m->StartDirtyLog() && m->FetchDirtyPages()) {
    char resolved[PATH_MAX];
    m->last_snapshot_dir_ = ::realpath(snap.dir.c_str(), resolved) != nullptr ? resolved : snap.dir;
  }
  return m;
}

Status Machine::StartDirtyLog() {
  VIREO_TRY_STATUS(vm_->StartDirtyLog());
  memory_->StartWriteLog();
  return {};
}

Result<std::vector<std::vector<uint64_t>>> Machine::FetchDirtyPages() {
  auto dirty = VIREO_TRY(vm_->FetchDirtyPages());
  const std::vector<std::vector<uint64_t>> written = memory_->FetchWriteLog();
  // Both are per region in GuestMemory's order, a bit per page.
  for (size_t r = 0; r < dirty.size() && r < written.size(); ++r) {
    for (size_t w = 0; w < dirty[r].size() && w < written[r].size(); ++w) {
      dirty[r][w] |= written[r][w];
    }
  }
  return dirty;
}

Result<snapshot::SnapshotState> Machine::CaptureState() const {
  // Pause drains device I/O and parks the I/O thread: a request still in flight here would
  // be lost with the state (its descriptors popped, no used entry).
  if (size_t in_flight = InFlightRequests(virtio_devices_); in_flight > 0) {
    return Fail("{} virtio requests in flight in a paused VM (a VMM bug)", in_flight);
  }
  snapshot::SnapshotState state;
  state.config = config_;
  state.accelerator = accelerator_name_;
  state.type = snapshot::SnapshotType::kFull;
  for (const GuestMemory::Region& region : memory_->regions()) state.ram.push_back(region.range);
  auto vm_state = vm_->SaveState();
  if (!vm_state) return Wrap("saving the VM state", vm_state.error());
  state.vm = std::move(*vm_state);
  for (const auto& vcpu : vcpus_) {
    auto saved = vcpu->SaveState();
    if (!saved) return Wrap(fmt::format("saving vCPU {}", vcpu->id()), saved.error());
    state.vcpus.push_back(std::move(*saved));
  }
  state.devices.com1 = persistent_.com1->state();
  state.devices.rtc = persistent_.rtc->state();
  state.devices.i8042 = i8042_->state();
  state.devices.pm = pm_->state();
  if (hpet_ != nullptr) state.devices.hpet = hpet_->SaveState();
  auto virtio_state = SaveVirtioState();
  if (!virtio_state) return Wrap("saving the virtio devices", virtio_state.error());
  state.devices.virtio = std::move(*virtio_state);
  // A random MAC and a kernel-picked tap name are fixed now: the restored device must keep
  // the MAC the guest knows, and re-attaches the tap by name.
  const auto nets = DevicesOf<virtio::Net>(virtio_devices_);
  for (size_t i = 0; i < nets.size() && i < state.config.nets.size(); ++i) {
    state.config.nets[i].mac = virtio::FormatMac(nets[i]->mac());
    state.config.nets[i].tap = nets[i]->tap_name();
  }
  return state;
}

Result<snapshot::VirtioStates> Machine::SaveVirtioState() const {
  snapshot::VirtioStates state;
  for (const auto& transport : mmio_transports_) state.transports.push_back(transport->SaveState());
  for (const auto& transport : pci_transports_) state.transports.push_back(transport->SaveState());
  // The devices' own records. Net may rewind its saved rx/tx queues (chains it held).
  for (size_t i = 0; i < virtio_devices_.size() && i < state.transports.size(); ++i) {
    virtio::VirtioDevice* device = virtio_devices_[i].get();
    std::vector<virtio::QueueState>& queues = state.transports[i].queues;
    if (auto* net = dynamic_cast<virtio::Net*>(device); net != nullptr && queues.size() == 2) {
      state.nets.push_back(
          net->SaveState(queues[virtio::Net::kRxQueue], queues[virtio::Net::kTxQueue]));
    } else if (auto* balloon = dynamic_cast<virtio::balloon::Balloon*>(device)) {
      state.balloon = balloon->SaveState();
    } else if (auto* vsock = dynamic_cast<virtio::Vsock*>(device)) {
      state.vsock = vsock->SaveState();
    }
  }
  if (pci_bus_) {
    // The host bridge as the guest reads it (slot 0, function 0).
    state.host_bridge.resize(pci::kConfigSpaceSize);
    for (uint16_t offset = 0; offset < pci::kConfigSpaceSize; offset += 4) {
      pci_bus_->ConfigRead(pci::PciBus::kHostBridgeSlot, 0, offset,
                           std::span(state.host_bridge).subspan(offset, 4));
    }
    state.pci_config_address = pci_config_io_->config_address();
  }
  return state;
}

Status Machine::RestoreVirtioState(const snapshot::VirtioStates& state) {
  const size_t transports = mmio_transports_.size() + pci_transports_.size();
  if (state.transports.size() != transports) {
    return Fail("the snapshot has state for {} virtio devices; its configuration makes {}",
                state.transports.size(), transports);
  }
  // The devices' own state goes in before their transports activate them.
  const auto nets = DevicesOf<virtio::Net>(virtio_devices_);
  const auto balloons = DevicesOf<virtio::balloon::Balloon>(virtio_devices_);
  const auto vsocks = DevicesOf<virtio::Vsock>(virtio_devices_);
  if (state.nets.size() != nets.size() || state.balloon.has_value() != !balloons.empty() ||
      state.vsock.has_value() != !vsocks.empty()) {
    return Fail(
        "the snapshot has device records for {} network devices, {} balloon and {} vsock; "
        "its configuration makes {}, {} and {}",
        state.nets.size(), state.balloon ? 1 : 0, state.vsock ? 1 : 0, nets.size(), balloons.size(),
        vsocks.size());
  }
  for (size_t i = 0; i < nets.size(); ++i) VIREO_TRY_STATUS(nets[i]->RestoreState(state.nets[i]));
  if (state.balloon) VIREO_TRY_STATUS(balloons[0]->RestoreState(*state.balloon));
  if (state.vsock) VIREO_TRY_STATUS(vsocks[0]->RestoreState(*state.vsock));
  if (pci_bus_ == nullptr) {
    if (!state.host_bridge.empty() || state.pci_config_address != 0) {
      return Fail("the snapshot has PCI bus state, but its virtio transport is mmio");
    }
    for (size_t i = 0; i < mmio_transports_.size(); ++i) {
      VIREO_TRY_STATUS(mmio_transports_[i]->RestoreState(state.transports[i]));
    }
    for (const auto& transport : mmio_transports_) transport->NotifyAllQueues();
    return {};
  }
  if (state.host_bridge.size() != pci::kConfigSpaceSize) {
    return Fail("the snapshot has no PCI host bridge state for a virtio-pci VM");
  }
  // Through the guest's path: the bridge's masks decide what a snapshot may change.
  for (uint16_t offset = 0; offset < pci::kConfigSpaceSize; offset += 4) {
    pci_bus_->ConfigWrite(pci::PciBus::kHostBridgeSlot, 0, offset,
                          std::span(state.host_bridge).subspan(offset, 4));
  }
  pci_config_io_->set_config_address(state.pci_config_address);
  for (size_t i = 0; i < pci_transports_.size(); ++i) {
    VIREO_TRY_STATUS(pci_transports_[i]->RestoreState(state.transports[i]));
    // The BAR moves to its saved address; the notify ioeventfds move with it.
    pci_bus_->RefreshBars(pci_slots_[i]);
  }
  for (const auto& transport : pci_transports_) transport->NotifyAllQueues();
  return {};
}

}  // namespace vireo
