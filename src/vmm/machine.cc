#include "vmm/machine.h"

#include <poll.h>
#include <pthread.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

#include "arch/x86/acpi/acpi.h"
#include "arch/x86/boot_cpu.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "base/log.h"
#include "devices/acpi/pm_device.h"
#include "devices/acpi/reset_control.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/debug_exit.h"
#include "devices/legacy/fw_cfg.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/port80.h"
#include "devices/legacy/serial_8250.h"
#include "devices/pci/config_access.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_bus.h"
#include "virtio/balloon/balloon.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/mmio_transport.h"
#include "virtio/net/mac.h"
#include "virtio/net/net.h"
#include "virtio/pci_transport.h"
#include "virtio/rng.h"
#include "virtio/vsock/vsock.h"
#include "vmm/blk_device.h"
#include "vmm/device_counters.h"
#include "vmm/exit_handler.h"
#include "vmm/irqfd_line.h"

namespace vireo {
namespace {

constexpr uint32_t kKeyboardGsi = 1;
constexpr uint16_t kAcpiPmBase = 0x600;

// MSI/MSI-X messages from PCI devices. The first time a message (address, data) is sent it
// gets a KVM GSI route and an irqfd; every later one is a single eventfd write. Guests
// program a handful of vectors, so the table stays small; past kMaxRoutes (or if a route
// cannot be made) messages go through KVM_SIGNAL_MSI instead.
class VmMsiSink : public pci::MsiSink {
 public:
  explicit VmMsiSink(accel::Vm& vm) : vm_(vm) {}
  void SendMsi(uint64_t address, uint32_t data) override {
    std::lock_guard lock(mutex_);  // devices send from the I/O thread, unmasking from vCPUs
    auto key = std::make_pair(address, data);
    if (auto it = routes_.find(key); it != routes_.end()) {
      it->second.Signal();
      return;
    }
    if (routes_.size() < kMaxRoutes) {
      auto gsi = vm_.AddMsiRoute(address, data);
      auto event = EventFd::Create();
      if (gsi && event && vm_.AddIrqFd(*gsi, event->fd())) {
        event->Signal();
        routes_.emplace(key, std::move(*event));
        return;
      }
    }
    (void)vm_.SignalMsi(address, data);
  }

 private:
  static constexpr size_t kMaxRoutes = 256;
  accel::Vm& vm_;
  std::mutex mutex_;
  std::map<std::pair<uint64_t, uint32_t>, EventFd> routes_;
};

}  // namespace

Result<PersistentDevices> PersistentDevices::Create(const VmConfig& config) {
  PersistentDevices p;
  p.console = VIREO_TRY(Console::Create(config.serial, config.serial_path));
  p.com1_irq = std::make_shared<VmIrqLine>(Serial8250::kCom1Irq);
  p.com1 = std::make_shared<Serial8250>(p.com1_irq, p.console->OutputSink());
  uint64_t low_ram = std::min(config.memory, x86::kMmioHoleStart);
  p.rtc = std::make_shared<CmosRtc>(low_ram, config.memory - low_ram);
  if (config.console) p.virtio_console = std::make_shared<virtio::Console>(p.console->OutputSink());
  return p;
}

Result<std::unique_ptr<Machine>> Machine::Build(const VmConfig& config,
                                                accel::Accelerator& accelerator,
                                                PersistentDevices& persistent,
                                                const boot::BootImage& image) {
  std::unique_ptr<Machine> m(new Machine(config, persistent));
  auto ranges = x86::RamLayout(config.memory);
  m->memory_.emplace(VIREO_TRY(GuestMemory::Create(ranges, config.memory_options)));
  m->vm_ = VIREO_TRY(accelerator.CreateVm(config.cpus));
  m->accelerator_name_ = accelerator.name();
  VIREO_TRY_STATUS(m->vm_->MapMemory(*m->memory_));

  // Devices that ACPI and the kernel command line announce exist before either is written.
  m->io_loop_ = VIREO_TRY(EventLoop::Create("vireo-io"));
  VIREO_TRY_STATUS(m->io_loop_->Start());
  m->virtio_devices_ = VIREO_TRY(m->CreateVirtioDevices());
  x86::acpi::AcpiConfig acpi;
  acpi.cpus = config.cpus;
  acpi.ioapic_id = static_cast<uint8_t>(config.cpus);
  acpi.pm_base = kAcpiPmBase;
  const bool mmio = config.transport == VirtioTransport::kMmio;
  acpi.pci = !mmio;
  acpi.hpet = config.hpet;
  for (size_t i = 0; mmio && i < m->virtio_devices_.size(); ++i) {
    acpi.virtio_mmio.push_back({x86::kVirtioMmioBase + i * x86::kVirtioMmioSlotSize,
                                static_cast<uint32_t>(x86::kVirtioMmioSlotSize),
                                static_cast<uint8_t>(x86::kVirtioMmioGsis[i])});
  }
  GuestAddress rsdp = VIREO_TRY(x86::acpi::WriteAcpiTables(*m->memory_, acpi));

  boot::BootImage booted = image;
  for (size_t i = 0; mmio && i < m->virtio_devices_.size(); ++i) {
    std::string param =
        virtio::MmioCmdlineParam(x86::kVirtioMmioBase + i * x86::kVirtioMmioSlotSize,
                                 x86::kVirtioMmioSlotSize, x86::kVirtioMmioGsis[i]);
    booted.cmdline += booted.cmdline.empty() ? param : " " + param;
  }

  boot::MachineInfo machine{config.memory, x86::E820Map(config.memory), rsdp};
  auto entry = boot::LoadKernel(*m->memory_, booted, config.boot_protocol, machine);
  if (!entry) return Wrap("loading the kernel", entry.error());
  m->boot_entry_ = std::move(*entry);
  x86::CpuMode mode = m->boot_entry_.mode == boot::EntryMode::kLong64 ? x86::CpuMode::kLong64
                                                                      : x86::CpuMode::kProtected32;
  VIREO_TRY_STATUS(x86::WriteBootTables(*m->memory_, mode));

  VIREO_TRY_STATUS(m->BuildDevices());
  VIREO_TRY_STATUS(mmio ? m->AttachVirtioMmio(m->virtio_devices_)
                        : m->AttachVirtioPci(m->virtio_devices_));
  VIREO_TRY_STATUS(m->BuildVcpus(accelerator));
  return m;
}

Machine::~Machine() {
  // A paused I/O thread must be let go before it can be joined.
  pause_.Release();
  ReleaseIoThread();
  // Device work stops before the devices and guest memory it uses go away.
  if (io_loop_) io_loop_->Stop();
  for (auto& device : virtio_devices_) device->Reset();
  // Persistent devices must not signal a VM that is going away.
  persistent_.com1_irq->Attach(nullptr);
}

Result<std::vector<std::shared_ptr<virtio::VirtioDevice>>> Machine::CreateVirtioDevices() {
  std::vector<std::shared_ptr<virtio::VirtioDevice>> devices;
  for (const DiskConfig& disk : config_.disks) {
    devices.push_back(
        std::shared_ptr<virtio::VirtioDevice>(VIREO_TRY(CreateBlkDevice(disk, *io_loop_))));
  }
  for (const NetConfig& net : config_.nets) {
    virtio::NetOptions options;
    options.tap_name = net.tap;
    if (!net.mac.empty()) {
      auto mac = virtio::ParseMac(net.mac);
      if (!mac) return Wrap(fmt::format("--net mac={}", net.mac), mac.error());
      options.mac = *mac;
    }
    auto device = virtio::Net::Create(options, *io_loop_);
    if (!device) return Wrap(fmt::format("--net tap={}", net.tap), device.error());
    devices.push_back(std::shared_ptr<virtio::VirtioDevice>(std::move(*device)));
  }
  if (config_.rng) devices.push_back(std::make_shared<virtio::Rng>());
  if (persistent_.virtio_console) devices.push_back(persistent_.virtio_console);
  if (config_.vsock) {
    virtio::vsock::VsockOptions options;
    options.guest_cid = config_.vsock->cid;
    options.uds_path = config_.vsock->uds;
    auto vsock = virtio::Vsock::Create(options, *io_loop_);
    if (!vsock) return Wrap("--vsock", vsock.error());
    devices.push_back(std::shared_ptr<virtio::VirtioDevice>(std::move(*vsock)));
  }
  if (config_.balloon) {
    auto balloon = virtio::balloon::Balloon::Create({}, *io_loop_);
    if (!balloon) return Wrap("--balloon", balloon.error());
    devices.push_back(std::shared_ptr<virtio::VirtioDevice>(std::move(*balloon)));
  }
  if (devices.size() > std::size(x86::kVirtioMmioGsis)) {
    return Fail("{} virtio devices asked for; the virtio-mmio transport has {} slots",
                devices.size(), std::size(x86::kVirtioMmioGsis));
  }
  return devices;
}

Status Machine::AttachVirtioMmio(std::span<const std::shared_ptr<virtio::VirtioDevice>> devices) {
  for (size_t i = 0; i < devices.size(); ++i) {
    // The device raises its interrupt from the I/O thread through a KVM irqfd.
    auto event = VIREO_TRY(EventFd::Create());
    VIREO_TRY_STATUS(vm_->AddIrqFd(x86::kVirtioMmioGsis[i], event.fd()));
    auto irq = std::make_shared<IrqFdLine>(std::move(event));
    virtio_irqs_.push_back(irq);
    auto transport = std::make_shared<virtio::MmioTransport>(*memory_, devices[i], irq);
    mmio_transports_.push_back(transport);
    const GuestAddress base = x86::kVirtioMmioBase + i * x86::kVirtioMmioSlotSize;
    VIREO_TRY_STATUS(mmio_.Insert(transport, base, x86::kVirtioMmioSlotSize));
    // Devices with their own notify eventfd get it as a KVM ioeventfd on QueueNotify (queue
    // 0 written there), so a guest's kick reaches the I/O thread without a vCPU exit.
    for (uint16_t q = 0; q < devices[i]->num_queues(); ++q) {
      int fd = devices[i]->notify_fd(q);
      if (fd < 0) continue;
      accel::Vm::IoEvent notify{.mmio = true,
                                .address = base + virtio::MmioTransport::kQueueNotify,
                                .length = 4,
                                .datamatch = q};
      VIREO_TRY_STATUS(vm_->AddIoEvent(notify, fd));
    }
  }
  return {};
}

Status Machine::BuildDevices() {
  auto control = [this](const char* source) -> VmControl& {
    controls_.push_back(std::make_unique<DeviceVmControl>(stop_, source));
    return *controls_.back();
  };
  persistent_.com1_irq->Attach(vm_.get());
  persistent_.rtc->Reset();
  keyboard_irq_ = std::make_shared<VmIrqLine>(kKeyboardGsi);
  keyboard_irq_->Attach(vm_.get());

  i8042_ = I8042::Create(keyboard_irq_, control("i8042"));
  FwCfgConfig fw;
  fw.ram_size = config_.memory;
  fw.nb_cpus = static_cast<uint16_t>(config_.cpus);
  fw.max_cpus = static_cast<uint16_t>(config_.cpus);
  fw.cmdline = config_.cmdline;
  auto fw_cfg = std::make_shared<FwCfg>(fw);
  std::vector<FwCfgE820Entry> e820;
  for (const auto& e : x86::E820Map(config_.memory)) {
    e820.push_back({e.addr, e.size, static_cast<uint32_t>(e.type)});
  }
  VIREO_TRY_STATUS(fw_cfg->AddFile("etc/e820", BuildE820File(e820)));

  VIREO_TRY_STATUS(pio_.Insert(persistent_.com1, Serial8250::kCom1Base, Serial8250::kSize));
  VIREO_TRY_STATUS(pio_.Insert(i8042_->data_port(), 0x60, 1));
  VIREO_TRY_STATUS(pio_.Insert(i8042_->command_port(), 0x64, 1));
  VIREO_TRY_STATUS(pio_.Insert(persistent_.rtc, 0x70, CmosRtc::kSize));
  VIREO_TRY_STATUS(pio_.Insert(std::make_shared<Port80>(), 0x80, Port80::kSize));
  VIREO_TRY_STATUS(
      pio_.Insert(std::make_shared<DebugExit>(control("debug-exit")), 0xf4, DebugExit::kSize));
  VIREO_TRY_STATUS(pio_.Insert(fw_cfg, 0x510, FwCfg::kSize));
  // The SCI: ISA IRQ 9 = GSI 9, level, active high, as the FADT and MADT declare.
  sci_irq_ = std::make_shared<VmIrqLine>(x86::acpi::AcpiConfig{}.sci_irq);
  sci_irq_->Attach(vm_.get());
  pm_ = std::make_shared<AcpiPmDevice>(control("acpi"), sci_irq_);
  VIREO_TRY_STATUS(pio_.Insert(pm_, kAcpiPmBase, AcpiPmDevice::kSize));
  if (config_.hpet) VIREO_TRY_STATUS(BuildHpet());
  auto reset_control = std::make_shared<ResetControlDevice>(control("acpi"));
  if (config_.transport == VirtioTransport::kPci) return BuildPci(reset_control);
  return pio_.Insert(reset_control, ResetControlDevice::kPort, ResetControlDevice::kSize);
}

Status Machine::BuildHpet() {
  static_assert(irqchip::Hpet::kBase == x86::kHpetBase && irqchip::Hpet::kSize == x86::kHpetSize);
  // Legacy replacement drives ISA IRQ 0 and 8 = GSI 0 and 8, where the PIT's output goes
  // (GSI 0 is PIC IRQ 0 and IOAPIC pin 2 under both accelerators, as the MADT's override
  // says). Routed timers use IOAPIC pins 20-23 = GSIs 20-23.
  accel::Vm* vm = vm_.get();
  irqchip::Hpet::Callbacks callbacks;
  callbacks.set_irq = [vm](uint32_t line, bool /*legacy*/, bool level) {
    (void)vm->SetIrqLine(line, level);
  };
  // While the HPET owns IRQ 0 the PIT's counter 0 must not also raise it (QEMU disables
  // its PIT's output the same way).
  callbacks.legacy_changed = [vm](bool on) {
    if (auto ok = vm->SetPitIrqEnabled(!on); !ok) {
      Log(LogLevel::kWarn, "HPET legacy replacement {}: {}", on ? "on" : "off", ok.error().message);
    }
  };
  hpet_ = VIREO_TRY(irqchip::HpetDevice::Create(hpet_clock_, *io_loop_, std::move(callbacks)));
  return mmio_.Insert(hpet_, x86::kHpetBase, x86::kHpetSize);
}

Status Machine::BuildPci(std::shared_ptr<BusDevice> reset_control) {
  msi_sink_ = std::make_unique<VmMsiSink>(*vm_);
  pci_bus_ =
      std::make_unique<pci::PciBus>(pci::BarWindow{x86::kPciBarWindowStart, x86::kPciBarWindowEnd});
  // 0xcf9 (reset control) sits inside the 0xcf8-0xcff config ports, as on a PIIX: the
  // config-address device forwards byte accesses there.
  pci_config_io_ = std::make_shared<pci::PciConfigIo>(*pci_bus_, reset_control);
  VIREO_TRY_STATUS(pio_.Insert(pci_config_io_, 0xcf8, 8));
  VIREO_TRY_STATUS(mmio_.Insert(std::make_shared<pci::PciEcam>(*pci_bus_), x86::kPciEcamBase,
                                x86::kPciEcamSize));
  VIREO_TRY_STATUS(mmio_.Insert(pci_bus_->mmio_router(), x86::kPciBarWindowStart,
                                x86::kPciBarWindowEnd - x86::kPciBarWindowStart));
  VIREO_TRY_STATUS(pio_.Insert(pci_bus_->io_router(), pci::kDefaultIoWindow.start,
                               pci::kDefaultIoWindow.end - pci::kDefaultIoWindow.start));
  return {};
}

Status Machine::AttachVirtioPci(std::span<const std::shared_ptr<virtio::VirtioDevice>> devices) {
  for (const auto& device : devices) {
    auto transport = std::make_shared<virtio::PciTransport>(*memory_, device, *msi_sink_);
    // Follow the guest's BAR programming: each queue's notify address gets the device's
    // eventfd as a KVM ioeventfd (any width; the address alone picks the queue).
    virtio::VirtioDevice* target = device.get();  // owned by the transport, which owns this
    transport->SetNotifyAddressListener([this, target](uint16_t queue,
                                                       std::optional<uint64_t> old_address,
                                                       std::optional<uint64_t> new_address) {
      int fd = target->notify_fd(queue);
      if (fd < 0) return;
      accel::Vm::IoEvent event{.mmio = true, .address = 0, .length = 0, .datamatch = std::nullopt};
      if (old_address) {
        event.address = *old_address;
        (void)vm_->RemoveIoEvent(event, fd);
      }
      if (new_address) {
        event.address = *new_address;
        if (auto added = vm_->AddIoEvent(event, fd); !added) {
          Log(LogLevel::kWarn, "virtio-pci notify at {:#x}: {}", *new_address,
              added.error().message);
        }
      }
    });
    auto slot = pci_bus_->AddDevice(transport);
    if (!slot) return Wrap(fmt::format("adding {} to PCI bus 0", device->name()), slot.error());
    pci_transports_.push_back(transport);
    pci_slots_.push_back(*slot);
  }
  return {};
}

Status Machine::BuildVcpus(accel::Accelerator& /*accelerator*/) {
  auto supported = vm_->SupportedCpuid();
  if (!supported) return Wrap("reading the CPUID KVM supports", supported.error());
  x86::EntryState entry;
  entry.mode = boot_entry_.mode == boot::EntryMode::kLong64 ? x86::CpuMode::kLong64
                                                            : x86::CpuMode::kProtected32;
  entry.rip = boot_entry_.entry_point;
  entry.rsi = boot_entry_.rsi;
  entry.rbx = boot_entry_.rbx;
  entry.rax = boot_entry_.rax;
  for (int id = 0; id < config_.cpus; ++id) {
    auto vcpu = VIREO_TRY(vm_->CreateVcpu(id));
    auto cpuid = x86::BuildCpuid(*supported, {config_.cpus}, static_cast<uint32_t>(id));
    VIREO_TRY_STATUS(vcpu->SetCpuid(cpuid));
    VIREO_TRY_STATUS(x86::SetupCpuMsrs(*vcpu));
    VIREO_TRY_STATUS(vcpu->SetupFpu());
    VIREO_TRY_STATUS(vcpu->SetupLocalApic());
    // Only the BSP gets boot state; APs wait in the in-kernel LAPIC for INIT/SIPI.
    if (id == 0) VIREO_TRY_STATUS(x86::SetupBootCpu(*vcpu, entry));
    vcpus_.push_back(std::move(vcpu));
  }
  counters_.resize(vcpus_.size());
  return {};
}

void Machine::VcpuThread(size_t index, RunTimings* timings) {
  accel::Vcpu& vcpu = *vcpus_[index];
  // Named so `top -H`, /proc/PID/task/*/comm and tests can find each vCPU.
  char name[16];
  std::snprintf(name, sizeof(name), "vcpu%zu", index);
  pthread_setname_np(pthread_self(), name);
  if (auto pin = config_.cpu_affinity.find(static_cast<int>(index));
      pin != config_.cpu_affinity.end()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(pin->second, &set);
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0) {
      Log(LogLevel::kWarn, "cannot pin vCPU {} to host CPU {}", index, pin->second);
    }
  }
  ExitContext context{pio_, mmio_, stop_, counters_[index]};
  if (pause_.closing()) pause_.Park();  // started paused (a restore with --paused)
  if (index == 0) timings->first_guest_entry = std::chrono::steady_clock::now();
  while (!stop_.stopped()) {
    accel::VcpuExit exit = vcpu.Run();
    ExitAction action = HandleExit(exit, context);
    if (action == ExitAction::kContinue) {
      if (exit.reason == accel::ExitReason::kInterrupted) {
        vcpu.ClearKick();
        // The pause point: a kicked KVM_RUN has finished any I/O the previous exit left
        // pending, so the vCPU's state is whole while it is parked here.
        if (pause_.closing()) pause_.Park();
      }
      continue;
    }
    if (action == ExitAction::kFatal) {
      stop_.Request({StopReason::kError, 1, DescribeFatalExit(exit, vcpu, *memory_)});
    }
    break;
  }
}

RunOutcome Machine::Run(int signal_fd, RunTimings& timings) {
  stop_.set_on_stop([this] {
    pause_.Release();  // a stop ends a pause: parked threads must see it and leave
    ReleaseIoThread();
    for (auto& vcpu : vcpus_) vcpu->Kick();
  });
  // stdin feeds virtio-console when there is one, else the UART; both outlive this machine.
  if (persistent_.virtio_console) {
    virtio::Console& console = *persistent_.virtio_console;
    persistent_.console->StartInput(
        {[&console](std::span<const uint8_t> bytes) { return console.EnqueueInput(bytes); },
         [&console] { return console.input_space(); }});
  } else {
    Serial8250& uart = *persistent_.com1;
    persistent_.console->StartInput(
        {[&uart](std::span<const uint8_t> bytes) { return uart.EnqueueInput(bytes); },
         [&uart] { return uart.input_space(); }});
  }
  std::vector<std::thread> threads;
  threads.reserve(vcpus_.size());
  if (start_paused_) pause_.Arm();
  for (size_t i = 0; i < vcpus_.size(); ++i) {
    threads.emplace_back([this, i, &timings] { VcpuThread(i, &timings); });
  }
  if (start_paused_) {
    std::unique_lock lock(control_mu_);
    auto paused = PauseLocked(std::chrono::milliseconds(5000));
    start_pause_pending_ = false;
    control_cv_.notify_all();
    lock.unlock();
    if (!paused) {
      stop_.Request({StopReason::kError, 1, "starting paused: " + paused.error().message});
    }
  }
  while (!stop_.stopped()) {
    pollfd fds[2] = {{stop_.event_fd(), POLLIN, 0}, {signal_fd, POLLIN, 0}};
    int n = ::poll(fds, signal_fd >= 0 ? 2 : 1, -1);
    if (n < 0) continue;
    if (signal_fd >= 0 && (fds[1].revents & POLLIN)) {
      signalfd_siginfo info{};
      if (::read(signal_fd, &info, sizeof(info)) == sizeof(info)) {
        int sig = static_cast<int>(info.ssi_signo);
        stop_.Request({StopReason::kSignal, 128 + sig, strsignal(sig)});
      }
    }
  }
  for (auto& t : threads) t.join();
  timings.end = std::chrono::steady_clock::now();
  return stop_.outcome();
}

Status Machine::Pause(std::chrono::milliseconds timeout) {
  std::lock_guard lock(control_mu_);
  return PauseLocked(timeout);
}

Status Machine::PauseLocked(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto kick_all = [this] {
    for (auto& vcpu : vcpus_) vcpu->Kick();
  };
  VIREO_TRY_STATUS(pause_.Close(vcpus_.size(), kick_all, timeout));
  // No vCPU runs, so no new requests arrive. Requests already handed to a backend complete
  // on the I/O thread; once none is in flight it is parked. A notification it was still
  // processing may have submitted more just before parking: then let it go and wait again.
  for (;;) {
    while (InFlightRequests(virtio_devices_) > 0) {
      if (std::chrono::steady_clock::now() >= deadline) {
        pause_.Open();
        return Fail("device I/O still in flight after {} ms", timeout.count());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    if (auto parked = ParkIoThread(deadline); !parked) {
      pause_.Open();
      return parked;
    }
    if (InFlightRequests(virtio_devices_) == 0) return {};
    ReleaseIoThread();
    // Wait until it has really left, so the next park is a fresh one that follows the
    // completions it is about to process.
    std::unique_lock lock(io_park_mu_);
    io_park_cv_.wait(lock, [this] { return !io_parked_; });
  }
}

void Machine::Resume() {
  std::unique_lock lock(control_mu_);
  // Restored paused: Run() pauses the machine properly first (vCPUs parked and the I/O
  // thread parked); resuming before that would let the I/O thread park after this release.
  while (start_pause_pending_ && !stop_.stopped()) {
    control_cv_.wait_for(lock, std::chrono::milliseconds(10));
  }
  ReleaseIoThread();
  pause_.Open();
}

Status Machine::ParkIoThread(std::chrono::steady_clock::time_point deadline) {
  std::unique_lock lock(io_park_mu_);
  io_hold_ = true;
  const bool posted = io_loop_->Post([this] {
    std::unique_lock inner(io_park_mu_);
    if (!io_hold_) return;  // a late item from a pause that was already undone
    io_parked_ = true;
    io_park_cv_.notify_all();
    io_park_cv_.wait(inner, [this] { return !io_hold_; });
    io_parked_ = false;
    io_park_cv_.notify_all();
  });
  if (!posted || !io_park_cv_.wait_until(lock, deadline, [this] { return io_parked_; })) {
    io_hold_ = false;
    io_park_cv_.notify_all();
    return Fail("the I/O thread did not reach its pause point");
  }
  return {};
}

void Machine::ReleaseIoThread() {
  std::lock_guard lock(io_park_mu_);
  io_hold_ = false;
  io_park_cv_.notify_all();
}

void Machine::PressPowerButton() { pm_->PressPowerButton(); }

std::vector<VcpuCounters> Machine::LiveCounters() const {
  std::vector<VcpuCounters> out;
  out.reserve(counters_.size());
  for (const VcpuCounters& live : counters_) out.push_back(LoadCounters(live));
  return out;
}

std::vector<DeviceCounters> Machine::LiveDeviceCounters() const {
  return CollectDeviceCounters(virtio_devices_);
}

std::vector<std::string> Machine::DeviceNames() const {
  return vireo::DeviceNames(virtio_devices_);
}

}  // namespace vireo

namespace vireo {
namespace {

virtio::balloon::Balloon* FindBalloon(
    const std::vector<std::shared_ptr<virtio::VirtioDevice>>& devices) {
  for (const auto& device : devices) {
    if (auto* balloon = dynamic_cast<virtio::balloon::Balloon*>(device.get())) return balloon;
  }
  return nullptr;
}

}  // namespace

std::pair<uint64_t, uint64_t> Machine::BalloonPages() const {
  const virtio::balloon::Balloon* balloon = FindBalloon(virtio_devices_);
  if (balloon == nullptr) return {0, 0};
  return {balloon->target(), balloon->actual()};
}

Status Machine::SetBalloonTarget(uint64_t pages) {
  virtio::balloon::Balloon* balloon = FindBalloon(virtio_devices_);
  if (balloon == nullptr) return Fail("the VM has no balloon device (start it with --balloon)");
  return balloon->SetTarget(pages);
}

}  // namespace vireo
