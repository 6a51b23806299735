// Transport dispatch (virtio_transport.h): each operation for virtio-mmio (4.2.2 registers) and
// virtio-pci (4.1.4 structures).
#include "virtio_transport.h"

#include "acpi.h"
#include "apic.h"
#include "ioapic.h"
#include "serial.h"

namespace rt::virtio {

namespace {

bool StrEq(const char* a, const char* b) {
  for (int i = 0;; ++i) {
    if (a[i] != b[i]) return false;
    if (!a[i]) return true;
  }
}

// Routes `gsi` (edge, active high) to `vector` on this CPU through whichever IOAPIC the MADT
// says owns it; with no MADT (QEMU microvm, acpi=off), the IOAPIC at its default address.
bool RouteGsi(uint32_t gsi, uint8_t vector) {
  const Madt& madt = GetMadt();
  uint64_t base = 0;
  uint32_t gsi_base = 0;
  for (int i = 0; i < madt.ioapic_count; ++i) {
    const auto& io = madt.ioapics[i];
    if (gsi >= io.gsi_base && gsi < io.gsi_base + static_cast<uint32_t>(IoapicPins(io.addr))) {
      base = io.addr;
      gsi_base = io.gsi_base;
    }
  }
  if (!base && madt.ioapic_count == 0 &&
      gsi < static_cast<uint32_t>(IoapicPins(kIoapicDefaultBase))) {
    base = kIoapicDefaultBase;
  }
  if (!base) {
    Printf("virtio: no IOAPIC for GSI %u\n", gsi);
    return false;
  }
  int pin = static_cast<int>(gsi - gsi_base);
  IoapicSetRedirection(base, pin, {vector, static_cast<uint8_t>(LapicId()), false, false, false});
  Printf("virtio: GSI %u -> ioapic %#lx pin %d (edge, high) -> vector %#x\n", gsi, base, pin,
         vector);
  return true;
}

}  // namespace

const char* TransportName(TransportKind kind) {
  switch (kind) {
    case TransportKind::kMmio:
      return "mmio";
    case TransportKind::kPci:
      return "pci";
    case TransportKind::kNone:
      break;
  }
  return "none";
}

bool FindDevice(const BootInfo& info, uint32_t device_id, Location& out, int instance) {
  out = {};
  char want[8] = {};
  CmdlineValue(info, "virtio.transport", want, sizeof(want));
  bool pci_only = StrEq(want, "pci");
  bool mmio_only = StrEq(want, "mmio");
  if (want[0] && !pci_only && !mmio_only) {
    Printf("virtio: unknown virtio.transport=%s; trying pci, then mmio\n", want);
  }
  bool pci_first = pci_only || (!mmio_only && pci::McfgEcamBase());
  if (pci_first && FindPciDevice(info, device_id, out.pci, instance)) {
    out.kind = TransportKind::kPci;
    Printf("virtio: transport pci\n");
    return true;
  }
  if (!pci_only && FindDevice(info, device_id, out.mmio, instance)) {
    out.kind = TransportKind::kMmio;
    return true;
  }
  // Auto without an MCFG: PCI through the ports (QEMU's i440fx) as the last resort.
  if (!pci_first && !mmio_only && FindPciDevice(info, device_id, out.pci, instance)) {
    out.kind = TransportKind::kPci;
    Printf("virtio: transport pci\n");
    return true;
  }
  return false;
}

bool Transport::Open(const Location& where) {
  const pci::Address& was = where_.pci.addr;
  bool reopen = kind_ == TransportKind::kPci && where.kind == TransportKind::kPci &&
                was.bus == where.pci.addr.bus && was.dev == where.pci.addr.dev &&
                was.fn == where.pci.addr.fn;
  kind_ = TransportKind::kNone;
  reopened_ = reopen;
  msix_ = false;
  queue_msix_entry_ = kMsiNoVector;
  where_ = where;
  if (where.kind == TransportKind::kMmio) {
    mmio_ = MmioRegs(where.mmio.base);
    if (mmio_.Read(kMagicValue) != kMagic || mmio_.Read(kVersion) != kModernVersion) return false;
  } else if (where.kind == TransportKind::kPci) {
    if (!pci_.Open(where.pci, reopen)) return false;
  } else {
    return false;
  }
  kind_ = where.kind;
  return true;
}

uint32_t Transport::DeviceType() const {
  if (kind_ == TransportKind::kMmio) return mmio_.Read(kDeviceId);
  if (kind_ == TransportKind::kPci) return where_.pci.device_type;
  return 0;
}

uint32_t Transport::Status() const {
  if (kind_ == TransportKind::kMmio) return mmio_.Read(kStatus);
  if (kind_ == TransportKind::kPci) return pci_.Status();
  return 0;
}

void Transport::SetStatus(uint32_t status) const {
  if (kind_ == TransportKind::kMmio) mmio_.Write(kStatus, status);
  if (kind_ == TransportKind::kPci) pci_.SetStatus(static_cast<uint8_t>(status));
}

uint64_t Transport::DeviceFeatures() const {
  if (kind_ == TransportKind::kPci) return pci_.DeviceFeatures();
  if (kind_ != TransportKind::kMmio) return 0;
  mmio_.Write(kDeviceFeaturesSel, 0);
  uint64_t f = mmio_.Read(kDeviceFeatures);
  mmio_.Write(kDeviceFeaturesSel, 1);
  return f | uint64_t{mmio_.Read(kDeviceFeatures)} << 32;
}

void Transport::SetDriverFeatures(uint64_t features) const {
  if (kind_ == TransportKind::kPci) return pci_.SetDriverFeatures(features);
  if (kind_ != TransportKind::kMmio) return;
  mmio_.Write(kDriverFeaturesSel, 0);
  mmio_.Write(kDriverFeatures, static_cast<uint32_t>(features));
  mmio_.Write(kDriverFeaturesSel, 1);
  mmio_.Write(kDriverFeatures, static_cast<uint32_t>(features >> 32));
}

uint32_t Transport::QueueMax(int q) const {
  if (kind_ == TransportKind::kPci) return pci_.QueueMax(q);
  if (kind_ != TransportKind::kMmio) return 0;
  mmio_.Write(kQueueSel, static_cast<uint32_t>(q));
  return mmio_.Read(kQueueNumMax);
}

bool Transport::QueueEnabled(int q) const {
  if (kind_ == TransportKind::kPci) return pci_.QueueEnabled(q);
  if (kind_ != TransportKind::kMmio) return false;
  mmio_.Write(kQueueSel, static_cast<uint32_t>(q));
  return mmio_.Read(kQueueReady) != 0;
}

bool Transport::SetUpQueue(int q, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used) {
  if (kind_ == TransportKind::kPci) {
    return pci_.SetUpQueue(q, size, msix_ ? queue_msix_entry_ : kMsiNoVector, desc, avail, used);
  }
  if (kind_ != TransportKind::kMmio) return false;
  // 4.2.3.2 Virtqueue Configuration.
  mmio_.Write(kQueueSel, static_cast<uint32_t>(q));
  mmio_.Write(kQueueNum, size);
  mmio_.WriteAddress(kQueueDescLow, desc);
  mmio_.WriteAddress(kQueueDriverLow, avail);
  mmio_.WriteAddress(kQueueDeviceLow, used);
  mmio_.Write(kQueueReady, 1);
  return true;
}

void Transport::Notify(int q) const {
  if (kind_ == TransportKind::kMmio) mmio_.Write(kQueueNotify, static_cast<uint32_t>(q));
  if (kind_ == TransportKind::kPci) pci_.Notify(q);
}

bool Transport::EnableInterrupts(uint8_t queue_vector, uint8_t config_vector) {
  if (kind_ == TransportKind::kMmio) return RouteGsi(where_.mmio.gsi, queue_vector);
  if (kind_ != TransportKind::kPci) return false;
  msix_ = pci_.EnableMsix(config_vector, queue_vector, &queue_msix_entry_);
  if (!msix_) {
    Printf("virtio: pci %02x:%02x.%x: no MSI-X route\n", where_.pci.addr.bus, where_.pci.addr.dev,
           where_.pci.addr.fn);
    return false;
  }
  if (reopened_) return true;
  Printf("virtio: MSI-X -> apic %u: config vector %#x, queues vector %#x (entry %u)\n", LapicId(),
         queue_msix_entry_ ? config_vector : queue_vector, queue_vector, queue_msix_entry_);
  return true;
}

uint32_t Transport::TakeInterruptCauses(bool on_config_vector) {
  if (kind_ == TransportKind::kMmio) {
    // 4.2.2: acknowledge exactly the causes we saw.
    uint32_t isr = mmio_.Read(kInterruptStatus);
    if (isr) mmio_.Write(kInterruptAck, isr);
    return isr;
  }
  if (kind_ != TransportKind::kPci) return 0;
  // 4.1.4.5: with MSI-X the vector tells the cause; the ISR only matters when one entry is
  // shared by both (its configuration bit is still set, and reading clears it).
  if (on_config_vector) return kInterruptConfigChange;
  if (queue_msix_entry_ == 0) {
    return kInterruptUsedBuffer | ((pci_.ReadIsr() & kIsrConfig) ? kInterruptConfigChange : 0);
  }
  return kInterruptUsedBuffer;
}

uint32_t Transport::ConfigGeneration() const {
  if (kind_ == TransportKind::kMmio) return mmio_.Read(kConfigGeneration);
  if (kind_ == TransportKind::kPci) return pci_.ConfigGeneration();
  return 0;
}

uint8_t Transport::Config8(uint32_t off) const {
  if (kind_ == TransportKind::kMmio) return MmioRead<uint8_t>(mmio_.base() + kConfig + off);
  return kind_ == TransportKind::kPci ? pci_.DeviceConfig8(off) : 0xff;
}

uint16_t Transport::Config16(uint32_t off) const {
  if (kind_ == TransportKind::kMmio) return MmioRead<uint16_t>(mmio_.base() + kConfig + off);
  return kind_ == TransportKind::kPci ? pci_.DeviceConfig16(off) : 0xffff;
}

uint32_t Transport::Config32(uint32_t off) const {
  if (kind_ == TransportKind::kMmio) return mmio_.Read(kConfig + off);
  return kind_ == TransportKind::kPci ? pci_.DeviceConfig32(off) : 0xffffffff;
}

void Transport::SetConfig32(uint32_t off, uint32_t value) const {
  if (kind_ == TransportKind::kMmio) {
    mmio_.Write(kConfig + off, value);
  } else if (kind_ == TransportKind::kPci) {
    pci_.SetDeviceConfig32(off, value);
  }
}

}  // namespace rt::virtio
