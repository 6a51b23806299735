#include "accel/kvm/kvm_vm.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "accel/kvm/kvm_abi.h"
#include "accel/kvm/kvm_system.h"
#include "accel/kvm/kvm_vcpu.h"
#include "arch/x86/layout.h"
#include "base/log.h"

namespace vireo::kvm {

namespace {

// A PC's interrupt wiring (what QEMU's pc machine sets up): ISA IRQs 0-15 reach the
// master/slave 8259s, and GSIs 0-23 reach the IOAPIC pin of the same number, except that
// the PIT's IRQ 0 is wired to IOAPIC pin 2 (and nothing else is), matching the MADT's
// interrupt source override IRQ0 -> GSI2. KVM's default table would send GSI 0 to pin 0.
std::vector<kvm_irq_routing_entry> PcGsiRoutes() {
  std::vector<kvm_irq_routing_entry> entries;
  auto route = [&](uint32_t gsi, uint32_t chip, uint32_t pin) {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_IRQCHIP;
    e.u.irqchip.irqchip = chip;
    e.u.irqchip.pin = pin;
    entries.push_back(e);
  };
  for (uint32_t irq = 0; irq < 8; ++irq) {
    if (irq != 2) route(irq, KVM_IRQCHIP_PIC_MASTER, irq);  // IRQ 2 is the cascade
  }
  for (uint32_t irq = 8; irq < 16; ++irq) route(irq, KVM_IRQCHIP_PIC_SLAVE, irq - 8);
  for (uint32_t gsi = 0; gsi < 24; ++gsi) {
    if (gsi == 0) {
      route(0, KVM_IRQCHIP_IOAPIC, 2);
    } else if (gsi != 2) {
      route(gsi, KVM_IRQCHIP_IOAPIC, gsi);
    }
  }
  return entries;
}

// Split irqchip: GSIs 0-23 are MSI routes mirroring the userspace IOAPIC's redirection
// entries. Nothing is raised through them (SplitIrqchip sends KVM_SIGNAL_MSI); KVM scans
// them for the level-triggered vectors whose EOI must exit (KVM_EXIT_IOAPIC_EOI).
kvm_irq_routing_entry PinRoute(uint32_t pin, const MsiMessage& msi) {
  kvm_irq_routing_entry e{};
  e.gsi = pin;
  e.type = KVM_IRQ_ROUTING_MSI;
  e.u.msi.address_lo = static_cast<uint32_t>(msi.address);
  e.u.msi.address_hi = static_cast<uint32_t>(msi.address >> 32);
  e.u.msi.data = msi.data;
  return e;
}

// KVM_SET_GSI_ROUTING replaces the whole table, so every change sends all of it.
Status SetGsiRouting(int vm_fd, const std::vector<kvm_irq_routing_entry>& entries) {
  std::vector<uint8_t> buffer(sizeof(kvm_abi::IrqRoutingHeader) +
                              entries.size() * sizeof(kvm_irq_routing_entry));
  auto* header = reinterpret_cast<kvm_abi::IrqRoutingHeader*>(buffer.data());
  header->nr = static_cast<uint32_t>(entries.size());
  header->flags = 0;
  std::memcpy(buffer.data() + sizeof(*header), entries.data(),
              entries.size() * sizeof(kvm_irq_routing_entry));
  if (::ioctl(vm_fd, kvm_abi::kSetGsiRouting, buffer.data()) < 0) {
    return Fail("KVM_SET_GSI_ROUTING failed: {}", std::strerror(errno));
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<KvmVm>> KvmVm::Create(const KvmAccelerator& kvm, int vcpu_count,
                                             bool split) {
  UniqueFd fd;
  // KVM_CREATE_VM can fail with EINTR while the kernel is busy; retry a few times.
  for (int attempt = 0; attempt < 5 && !fd; ++attempt) {
    fd.reset(::ioctl(kvm.fd(), KVM_CREATE_VM, 0));
    if (!fd && errno != EINTR) break;
  }
  if (!fd) return Fail("KVM_CREATE_VM failed: {}", std::strerror(errno));

  // Intel VMX needs these pages inside guest-physical space; place them in the MMIO hole.
  if (::ioctl(fd.get(), KVM_SET_TSS_ADDR, x86::kKvmTssAddress) < 0) {
    return Fail("KVM_SET_TSS_ADDR failed: {}", std::strerror(errno));
  }
  uint64_t identity = x86::kKvmIdentityMap;
  if (::ioctl(fd.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) {
    return Fail("KVM_SET_IDENTITY_MAP_ADDR failed: {}", std::strerror(errno));
  }
  if (split) {
    auto vm = std::unique_ptr<KvmVm>(new KvmVm(kvm, std::move(fd)));
    VIREO_TRY_STATUS(vm->CreateSplitIrqchip(vcpu_count));
    return vm;
  }
  if (::ioctl(fd.get(), KVM_CREATE_IRQCHIP, 0) < 0) {
    return Fail("KVM_CREATE_IRQCHIP failed: {}", std::strerror(errno));
  }
  std::vector<kvm_irq_routing_entry> routes = PcGsiRoutes();
  VIREO_TRY_STATUS(SetGsiRouting(fd.get(), routes));
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;  // port 0x61 handled in the kernel, no speaker
  if (::ioctl(fd.get(), KVM_CREATE_PIT2, &pit) < 0) {
    return Fail("KVM_CREATE_PIT2 failed: {}", std::strerror(errno));
  }
  auto vm = std::unique_ptr<KvmVm>(new KvmVm(kvm, std::move(fd)));
  vm->routes_ = std::move(routes);
  return vm;
}

KvmVm::~KvmVm() = default;

Status KvmVm::CreateSplitIrqchip(int vcpu_count) {
  // Before any vCPU exists (api.rst, KVM_CAP_SPLIT_IRQCHIP): the LAPICs are KVM's, and
  // args[0] is how many GSIs are IOAPIC pins, whose routes KVM scans for EOI exits.
  kvm_enable_cap cap{};
  cap.cap = KVM_CAP_SPLIT_IRQCHIP;
  cap.args[0] = irqchip::Ioapic::kPins;
  if (::ioctl(fd_.get(), KVM_ENABLE_CAP, &cap) < 0) {
    return Fail("enabling KVM_CAP_SPLIT_IRQCHIP failed: {}; use --irqchip kernel",
                std::strerror(errno));
  }
  SplitIrqchipHost& host = *this;
  split_ = std::make_unique<SplitIrqchip>(host, vcpu_count, clock_);
  const auto pins = split_->PinRoutes();
  for (uint32_t pin = 0; pin < pins.size(); ++pin) routes_.push_back(PinRoute(pin, pins[pin]));
  VIREO_TRY_STATUS(SetGsiRouting(fd_.get(), routes_));
  return split_->Start();
}

bool KvmVm::DeliverMsi(uint64_t address, uint32_t data) {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  // > 0: delivered; 0: no LAPIC took it (e.g. software-disabled).
  const int delivered = ::ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi);
  if (delivered < 0) {
    Log(LogLevel::kWarn, "KVM_SIGNAL_MSI for the IOAPIC failed: {}", std::strerror(errno));
  }
  return delivered > 0;
}

void KvmVm::RoutePinToMsi(int pin, uint64_t address, uint32_t data) {
  std::lock_guard lock(routes_mutex_);
  for (kvm_irq_routing_entry& e : routes_) {
    if (e.gsi == static_cast<uint32_t>(pin)) e = PinRoute(pin, MsiMessage{address, data});
  }
  if (auto set = SetGsiRouting(fd_.get(), routes_); !set) {
    Log(LogLevel::kWarn, "mirroring IOAPIC pin {} in KVM's routes: {}", pin, set.error().message);
  }
}

Status KvmVm::SetPitIrqEnabled(bool enabled) {
  if (split_) {
    split_->SetPitIrqEnabled(enabled);
    return {};
  }
  // KVM_PIT_FLAGS_HPET_LEGACY stops the in-kernel PIT from creating counter 0's timer (and
  // setting it cancels the running one); clearing it reloads counter 0 with its count, as
  // QEMU's kvm_pit_put does for an HPET entering or leaving legacy replacement.
  kvm_pit_state2 pit{};
  if (::ioctl(fd_.get(), KVM_GET_PIT2, &pit) < 0) {
    return Fail("KVM_GET_PIT2 failed: {}", std::strerror(errno));
  }
  uint32_t flags = pit.flags | KVM_PIT_FLAGS_HPET_LEGACY;
  if (enabled) flags = pit.flags & ~KVM_PIT_FLAGS_HPET_LEGACY;
  if (flags == pit.flags) return {};
  pit.flags = flags;
  if (::ioctl(fd_.get(), KVM_SET_PIT2, &pit) < 0) {
    return Fail("KVM_SET_PIT2 failed: {}", std::strerror(errno));
  }
  return {};
}

Result<uint32_t> KvmVm::AddMsiRoute(uint64_t address, uint32_t data) {
  std::lock_guard lock(routes_mutex_);
  if (next_msi_gsi_ >= kMaxGsi) {
    return Fail("no free GSI for another MSI route ({} in use)", next_msi_gsi_ - kFirstMsiGsi);
  }
  kvm_irq_routing_entry e{};
  e.gsi = next_msi_gsi_;
  e.type = KVM_IRQ_ROUTING_MSI;
  e.u.msi.address_lo = static_cast<uint32_t>(address);
  e.u.msi.address_hi = static_cast<uint32_t>(address >> 32);
  e.u.msi.data = data;
  routes_.push_back(e);
  if (auto set = SetGsiRouting(fd_.get(), routes_); !set) {
    routes_.pop_back();
    return tl::unexpected(set.error());
  }
  return next_msi_gsi_++;
}

Status KvmVm::MapMemory(const GuestMemory& memory) {
  for (const GuestMemory::Region& region : memory.regions()) {
    kvm_userspace_memory_region r{};
    r.slot = next_slot_++;
    r.guest_phys_addr = region.range.base;
    r.memory_size = region.range.size;
    r.userspace_addr = reinterpret_cast<uint64_t>(region.mapping.get());
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r) < 0) {
      return Fail("KVM_SET_USER_MEMORY_REGION for {:#x}+{:#x} failed: {}", region.range.base,
                  region.range.size, std::strerror(errno));
    }
    slots_.push_back(r);
  }
  return {};
}

Result<std::unique_ptr<accel::Vcpu>> KvmVm::CreateVcpu(int id) {
  auto vcpu = VIREO_TRY(KvmVcpu::Create(kvm_, *this, id));
  return std::unique_ptr<accel::Vcpu>(std::move(vcpu));
}

Status KvmVm::SetIrqLine(uint32_t gsi, bool level) {
  if (split_ && gsi < irqchip::Ioapic::kPins) {
    split_->SetIrqLine(gsi, level);
    return {};
  }
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  if (::ioctl(fd_.get(), KVM_IRQ_LINE, &irq) < 0) {
    return Fail("KVM_IRQ_LINE gsi {} failed: {}", gsi, std::strerror(errno));
  }
  return {};
}

Result<std::vector<accel::CpuidEntry>> KvmVm::SupportedCpuid() { return kvm_.SupportedCpuid(); }

Status KvmVm::IoEventIoctl(const IoEvent& event, int event_fd, bool deassign) {
  kvm_ioeventfd io{};
  io.addr = event.address;
  io.len = event.length;
  io.fd = event_fd;
  if (!event.mmio) io.flags |= KVM_IOEVENTFD_FLAG_PIO;
  if (event.datamatch) {
    io.flags |= KVM_IOEVENTFD_FLAG_DATAMATCH;
    io.datamatch = *event.datamatch;
  }
  if (deassign) io.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IOEVENTFD, &io) < 0) {
    return Fail("KVM_IOEVENTFD {} at {} {:#x} failed: {}", deassign ? "removal" : "",
                event.mmio ? "MMIO" : "port", event.address, std::strerror(errno));
  }
  return {};
}

Status KvmVm::AddIoEvent(const IoEvent& event, int event_fd) {
  return IoEventIoctl(event, event_fd, false);
}
Status KvmVm::RemoveIoEvent(const IoEvent& event, int event_fd) {
  return IoEventIoctl(event, event_fd, true);
}

Status KvmVm::IrqFdIoctl(uint32_t gsi, int event_fd, bool deassign) {
  kvm_irqfd irqfd{};
  irqfd.fd = static_cast<uint32_t>(event_fd);
  irqfd.gsi = gsi;
  if (deassign) irqfd.flags = KVM_IRQFD_FLAG_DEASSIGN;
  if (::ioctl(fd_.get(), KVM_IRQFD, &irqfd) < 0) {
    return Fail("KVM_IRQFD for GSI {} failed: {}", gsi, std::strerror(errno));
  }
  return {};
}

// Split: irqfds on IOAPIC pins go through the userspace models (split_irqchip.h says why);
// those on MSI routes stay KVM's.
Status KvmVm::AddIrqFd(uint32_t gsi, int event_fd) {
  if (split_ && gsi < irqchip::Ioapic::kPins) return split_->AddIrqFd(gsi, event_fd);
  return IrqFdIoctl(gsi, event_fd, false);
}
Status KvmVm::RemoveIrqFd(uint32_t gsi, int event_fd) {
  if (split_ && gsi < irqchip::Ioapic::kPins) return split_->RemoveIrqFd(gsi, event_fd);
  return IrqFdIoctl(gsi, event_fd, true);
}

Status KvmVm::SignalMsi(uint64_t address, uint32_t data) {
  kvm_msi msi{};
  msi.address_lo = static_cast<uint32_t>(address);
  msi.address_hi = static_cast<uint32_t>(address >> 32);
  msi.data = data;
  // Returns > 0 when delivered, 0 when the guest blocked it (e.g. a masked LAPIC).
  if (::ioctl(fd_.get(), KVM_SIGNAL_MSI, &msi) < 0) {
    return Fail("KVM_SIGNAL_MSI failed: {}", std::strerror(errno));
  }
  return {};
}

}  // namespace vireo::kvm
