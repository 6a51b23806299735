// Machine: one boot of a VM. Build() assembles guest memory, the accelerator VM, ACPI
// tables, the loaded kernel, the devices on their buses and the vCPUs; Run() starts one
// thread per vCPU and returns when the VM stops. A guest reset ends this Machine; the
// caller builds a new one, handing over the devices that outlive a reset.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "accel/accelerator.h"
#include "base/event_loop.h"
#include "boot/kernel_loader.h"
#include "devices/bus.h"
#include "devices/irqchip/clock.h"
#include "devices/irqchip/hpet_device.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_bus.h"
#include "memory/guest_memory.h"
#include "vmm/console.h"
#include "vmm/exit_stats.h"
#include "vmm/pause_gate.h"
#include "vmm/run_outcome.h"
#include "vmm/stop_controller.h"
#include "vmm/vm_config.h"
#include "vmm/vm_controller.h"
#include "vmm/vm_irq_line.h"

namespace vireo {

class Serial8250;
class CmosRtc;
class I8042;
namespace snapshot {
struct LoadedSnapshot;
struct VirtioStates;
struct SnapshotState;
}  // namespace snapshot
namespace migration {
class MigrationSource;
}  // namespace migration
class AcpiPmDevice;
namespace virtio {
class VirtioDevice;
class Console;
class MmioTransport;
class PciTransport;
}  // namespace virtio
namespace pci {
class PciConfigIo;
}  // namespace pci

// What survives a guest reset: the console and its UART, and the battery-backed CMOS.
struct PersistentDevices {
  std::unique_ptr<Console> console;
  std::shared_ptr<VmIrqLine> com1_irq;
  std::shared_ptr<Serial8250> com1;
  std::shared_ptr<CmosRtc> rtc;
  std::shared_ptr<virtio::Console> virtio_console;  // with --console

  static Result<PersistentDevices> Create(const VmConfig& config);
};

// Whether a VM's devices can be snapshotted or migrated: an error naming the options whose
// state is not saved yet (machine_snapshot.cc).
Status CheckSnapshottable(const VmConfig& config);

class Machine {
 public:
  static Result<std::unique_ptr<Machine>> Build(const VmConfig& config,
                                                accel::Accelerator& accelerator,
                                                PersistentDevices& persistent,
                                                const boot::BootImage& image);
  // Builds the machine a snapshot describes (machine_snapshot.cc): its memory (mapped from the
  // snapshot), devices, vCPUs and all their state. `config` is the snapshot's configuration
  // with the host-side options of this run. Takes the snapshot's memory.
  static Result<std::unique_ptr<Machine>> Restore(const VmConfig& config,
                                                  accel::Accelerator& accelerator,
                                                  PersistentDevices& persistent,
                                                  snapshot::LoadedSnapshot& snapshot);
  ~Machine();

  // Run() parks every vCPU before its first guest instruction, as if paused. A Resume() that
  // comes before Run() has finished that pause (the API reports the VM paused from the start)
  // waits for it.
  void StartPaused() {
    start_paused_ = true;
    start_pause_pending_ = true;
  }
  // Writes a snapshot of the paused machine into `dir` (machine_snapshot.cc). A diff holds
  // the pages written since this machine's previous snapshot (or its restore).
  ControlResult<SnapshotInfo> SaveSnapshot(const std::string& dir, bool diff);
  // Live migration's view of this running machine (machine_migration.cc); refused for the
  // virtio devices snapshots refuse. Invalidates diff snapshots (it takes over the dirty log).
  Result<std::unique_ptr<migration::MigrationSource>> NewMigrationSource();

  // Runs until the guest or the host stops the VM. `signal_fd` (a signalfd for SIGINT and
  // SIGTERM, or -1) is watched so a signal stops the VM cleanly.
  RunOutcome Run(int signal_fd, RunTimings& timings);

  const std::vector<VcpuCounters>& counters() const { return counters_; }
  const boot::BootEntry& boot_entry() const { return boot_entry_; }

  // Control hooks (vmm/machine_controller.h), called from other threads while Run() runs.
  // Pause parks every vCPU at a kicked KVM_RUN (so any I/O the last exit left pending has
  // completed), waits for in-flight device I/O, then parks the I/O thread; on failure
  // nothing stays paused. Resume lets both go on.
  Status Pause(std::chrono::milliseconds timeout);
  void Resume();
  // ACPI power button: PWRBTN_STS and the SCI; the guest shuts itself down.
  void PressPowerButton();
  // Ends Run() with this outcome (first request wins), as a device's stop would.
  void RequestStop(RunOutcome outcome) { stop_.Request(std::move(outcome)); }
  bool stopping() const { return stop_.stopped(); }
  std::vector<VcpuCounters> LiveCounters() const;
  std::vector<DeviceCounters> LiveDeviceCounters() const;
  std::vector<std::string> DeviceNames() const;
  // "kvm" or "emu".
  const std::string& accelerator_name() const { return accelerator_name_; }
  // The virtio-balloon's num_pages and actual (4 KiB pages); {0, 0} without --balloon.
  std::pair<uint64_t, uint64_t> BalloonPages() const;
  // Sets num_pages and signals the driver; fails without --balloon.
  Status SetBalloonTarget(uint64_t pages);

 private:
  friend class MachineMigrationSource;
  explicit Machine(const VmConfig& config, PersistentDevices& persistent)
      : config_(config), persistent_(persistent) {}
  Status BuildDevices();
  // The HPET (--hpet on) on the MMIO bus, its interrupts into the VM's GSIs.
  Status BuildHpet();
  // virtio devices on the virtio-mmio transport, one 4 KiB slot and GSI each.
  Result<std::vector<std::shared_ptr<virtio::VirtioDevice>>> CreateVirtioDevices();
  Status AttachVirtioMmio(std::span<const std::shared_ptr<virtio::VirtioDevice>> devices);
  // The PCI host bridge, config access and BAR routing, and virtio devices on virtio-pci.
  Status BuildPci(std::shared_ptr<BusDevice> reset_control);
  Status AttachVirtioPci(std::span<const std::shared_ptr<virtio::VirtioDevice>> devices);
  Status BuildVcpus(accel::Accelerator& accelerator);
  // virtio transports, queues and the PCI bus registers (machine_snapshot.cc).
  Result<snapshot::VirtioStates> SaveVirtioState() const;
  // Everything but RAM, for a snapshot or a migration, of a paused machine: configuration,
  // RAM layout, VM, vCPU and device state (machine_snapshot.cc).
  Result<snapshot::SnapshotState> CaptureState() const;
  Status RestoreVirtioState(const snapshot::VirtioStates& state);
  // The dirty log of live migration and diff snapshots: the accelerator's (guest stores) and
  // guest memory's write log (the devices' writes) together (machine_snapshot.cc).
  Status StartDirtyLog();
  Result<std::vector<std::vector<uint64_t>>> FetchDirtyPages();
  void VcpuThread(size_t index, RunTimings* timings);
  // Pause with control_mu_ held.
  Status PauseLocked(std::chrono::milliseconds timeout);
  // Blocks the I/O thread inside a posted work item until ReleaseIoThread.
  Status ParkIoThread(std::chrono::steady_clock::time_point deadline);
  void ReleaseIoThread();

  VmConfig config_;
  PersistentDevices& persistent_;
  StopController stop_;
  std::vector<std::unique_ptr<DeviceVmControl>> controls_;
  std::optional<GuestMemory> memory_;  // outlives the accelerator VM that maps it
  std::unique_ptr<accel::Vm> vm_;
  std::unique_ptr<EventLoop> io_loop_;  // device work (virtio queues, disk completions)
  std::vector<std::unique_ptr<accel::Vcpu>> vcpus_;
  std::vector<VcpuCounters> counters_;
  Bus pio_{"pio"};
  Bus mmio_{"mmio"};
  std::shared_ptr<VmIrqLine> keyboard_irq_;
  std::vector<std::shared_ptr<InterruptLine>> virtio_irqs_;
  std::vector<std::shared_ptr<virtio::VirtioDevice>> virtio_devices_;
  std::unique_ptr<pci::MsiSink> msi_sink_;
  std::unique_ptr<pci::PciBus> pci_bus_;
  // The transports and the 0xCF8 latch, kept for snapshots: one transport per virtio
  // device, in virtio_devices_ order, on the configured transport (the other list is empty).
  std::vector<std::shared_ptr<virtio::MmioTransport>> mmio_transports_;
  std::vector<std::shared_ptr<virtio::PciTransport>> pci_transports_;
  std::vector<int> pci_slots_;  // pci_transports_[i] sits in slot pci_slots_[i]
  std::shared_ptr<pci::PciConfigIo> pci_config_io_;
  boot::BootEntry boot_entry_{};
  std::shared_ptr<VmIrqLine> sci_irq_;
  std::shared_ptr<AcpiPmDevice> pm_;
  std::shared_ptr<I8042> i8042_;
  // With --hpet on; declared after io_loop_ so it leaves the loop before the loop goes. Its
  // clock must be CLOCK_MONOTONIC, the timerfd's.
  irqchip::MonotonicClock hpet_clock_;
  std::shared_ptr<irqchip::HpetDevice> hpet_;
  PauseGate pause_;
  bool start_paused_ = false;
  // One Pause or Resume at a time (the API, a migration and Run's start pause), so a resume
  // cannot slip into a pause that is parking the I/O thread and leave it parked for good.
  std::mutex control_mu_;
  std::condition_variable control_cv_;
  bool start_pause_pending_ = false;  // guarded by control_mu_ once Run() has started
  // Snapshots: the directory of the last snapshot taken (or restored from), which a diff
  // snapshot names as its parent; the dirty log runs from then on. Guarded by the caller
  // (MachineController serialises snapshot calls).
  std::string last_snapshot_dir_;
  std::string accelerator_name_;  // recorded in snapshots
  std::mutex io_park_mu_;
  std::condition_variable io_park_cv_;
  bool io_hold_ = false;    // guarded by io_park_mu_: the I/O thread should stay parked
  bool io_parked_ = false;  // guarded by io_park_mu_: it is parked
};

}  // namespace vireo
