// virtio over PCI: discovery, capability parsing and the common configuration (virtio 1.2
// section 4.1).
#include "virtio_pci.h"

#include "apic.h"
#include "io.h"
#include "serial.h"

namespace rt::virtio {

namespace {

// 4.1.4 struct virtio_pci_cap (offsets within the capability).
constexpr uint16_t kCapLength = 2;
constexpr uint16_t kCapCfgType = 3;
constexpr uint16_t kCapBar = 4;
constexpr uint16_t kCapOffset = 8;
constexpr uint16_t kCapLengthField = 12;
constexpr uint16_t kNotifyCapMultiplier = 16;  // struct virtio_pci_notify_cap

// PCI 3.0 section 6.8.2: MSI-X capability and table entry layout.
constexpr uint16_t kMsixControl = 2;
constexpr uint16_t kMsixTable = 4;
constexpr uint16_t kMsixEnable = 1 << 15;
constexpr uint16_t kMsixFunctionMask = 1 << 14;
constexpr uint64_t kMsixEntrySize = 16;
constexpr uint32_t kMsiAddressBase = 0xfee00000;  // SDM Vol. 3A 10.11.1

struct Structure {
  uint64_t addr;  // 0: absent
  uint32_t length;
  uint32_t multiplier;  // notify only
};

}  // namespace

bool FindPciDevice(const BootInfo& info, uint32_t device_type, PciDevice& out, int instance) {
  if (!pci::Init(info)) return false;
  pci::Function fns[32];
  int n = pci::EnumerateBus0(fns, 32);
  int virtio = 0;
  for (int i = 0; i < n; ++i) {
    const pci::Function& f = fns[i];
    if (f.vendor != kPciVendor) continue;
    ++virtio;
    // 4.1.2.1: 0x1040..0x107f are modern; 0x1000..0x103f transitional (subsystem id = type).
    bool modern = f.device >= kPciModernDeviceBase && f.device <= 0x107f;
    uint32_t type =
        modern ? f.device - kPciModernDeviceBase : pci::Read16(f.addr, pci::kSubsystemId);
    Printf("virtio: pci %02x:%02x.%x id %04x:%04x device %u%s\n", f.addr.bus, f.addr.dev, f.addr.fn,
           f.vendor, f.device, type, modern ? "" : " (transitional)");
    if (type == device_type && instance-- == 0) {
      out = {f.addr, f.device, type};
      return true;
    }
  }
  if (virtio == 0) Printf("virtio: no virtio PCI functions on bus 0\n");
  return false;
}

uint8_t PciTransport::Read8(uint64_t a) { return a ? MmioRead<uint8_t>(a) : 0xff; }
void PciTransport::Write8(uint64_t a, uint8_t v) {
  if (a) MmioWrite<uint8_t>(a, v);
}

bool PciTransport::Open(const PciDevice& dev, bool quiet) {
  *this = {};
  dev_ = dev;
  pci::Address a = dev.addr;
  uint64_t bar_addr[6] = {};
  uint64_t bar_size[6] = {};
  auto map_bar = [&](int bar) {
    if (bar < 0 || bar > 5) return false;
    if (bar_size[bar]) return true;
    pci::Bar b;
    if (!pci::MapMemoryBar(a, bar, b)) return false;
    bar_addr[bar] = b.addr;
    bar_size[bar] = b.size;
    return true;
  };

  Structure found[kPciCapPciCfg + 1] = {};
  int caps = 0;
  for (uint8_t p = pci::FindCapability(a, pci::kCapVendor); p && caps < 48;
       p = pci::FindCapability(a, pci::kCapVendor, p), ++caps) {
    uint8_t type = pci::Read8(a, p + kCapCfgType);
    uint8_t bar = pci::Read8(a, p + kCapBar);
    uint8_t cap_len = pci::Read8(a, p + kCapLength);
    if (type < kPciCapCommonCfg || type > kPciCapDeviceCfg || found[type].addr) continue;
    if (cap_len < 16 || (type == kPciCapNotifyCfg && cap_len < 20)) continue;
    if (!map_bar(bar)) continue;  // 4.1.4.1: skip what the driver cannot use
    uint32_t offset = pci::Read32(a, p + kCapOffset);
    uint32_t length = pci::Read32(a, p + kCapLengthField);
    if (uint64_t{offset} + length > bar_size[bar]) {
      Printf("virtio: pci cap type %u: %#x+%#x past BAR%u (%#lx bytes)\n", type, offset, length,
             bar, bar_size[bar]);
      continue;
    }
    found[type] = {bar_addr[bar] + offset, length,
                   type == kPciCapNotifyCfg ? pci::Read32(a, p + kNotifyCapMultiplier) : 0};
  }
  const Structure& common = found[kPciCapCommonCfg];
  const Structure& notify = found[kPciCapNotifyCfg];
  const Structure& isr = found[kPciCapIsrCfg];
  if (!common.addr || common.length < kCommonCfgMinLength || !notify.addr || notify.length < 2 ||
      !isr.addr) {
    Printf("virtio: pci %02x:%02x.%x: common/notify/ISR structure missing or short\n", a.bus, a.dev,
           a.fn);
    return false;
  }
  common_ = common.addr;
  notify_ = notify.addr;
  notify_multiplier_ = notify.multiplier;
  isr_ = isr.addr;
  device_ = found[kPciCapDeviceCfg].addr;
  device_len_ = found[kPciCapDeviceCfg].length;
  for (uint16_t& off : queue_notify_off_) off = 0;

  msix_cap_ = pci::FindCapability(a, pci::kCapMsix);
  if (msix_cap_) {
    uint32_t table = pci::Read32(a, msix_cap_ + kMsixTable);
    int bir = static_cast<int>(table & 7);
    msix_entries_ = static_cast<uint16_t>((pci::Read16(a, msix_cap_ + kMsixControl) & 0x7ff) + 1);
    if (map_bar(bir) && (table & ~7u) + msix_entries_ * kMsixEntrySize <= bar_size[bir]) {
      msix_table_ = bar_addr[bir] + (table & ~7u);
    } else {
      Printf("virtio: pci MSI-X table outside BAR%d; no interrupts\n", bir);
      msix_cap_ = 0;
    }
  }
  if (quiet) return true;
  Printf("virtio: pci %02x:%02x.%x common %#lx notify %#lx (x%u) isr %#lx device %#lx msix %u\n",
         a.bus, a.dev, a.fn, common_, notify_, notify_multiplier_, isr_, device_,
         msix_cap_ ? msix_entries_ : 0);
  return true;
}

uint64_t PciTransport::DeviceFeatures() const {
  MmioWrite<uint32_t>(common_ + kCommonDeviceFeatureSelect, 0);
  uint64_t f = MmioRead<uint32_t>(common_ + kCommonDeviceFeature);
  MmioWrite<uint32_t>(common_ + kCommonDeviceFeatureSelect, 1);
  return f | uint64_t{MmioRead<uint32_t>(common_ + kCommonDeviceFeature)} << 32;
}

void PciTransport::SetDriverFeatures(uint64_t f) const {
  MmioWrite<uint32_t>(common_ + kCommonDriverFeatureSelect, 0);
  MmioWrite<uint32_t>(common_ + kCommonDriverFeature, static_cast<uint32_t>(f));
  MmioWrite<uint32_t>(common_ + kCommonDriverFeatureSelect, 1);
  MmioWrite<uint32_t>(common_ + kCommonDriverFeature, static_cast<uint32_t>(f >> 32));
}

uint16_t PciTransport::QueueMax(int q) const {
  if (q >= kMaxQueues) return 0;
  MmioWrite<uint16_t>(common_ + kCommonQueueSelect, static_cast<uint16_t>(q));
  return MmioRead<uint16_t>(common_ + kCommonQueueSize);
}

bool PciTransport::QueueEnabled(int q) const {
  MmioWrite<uint16_t>(common_ + kCommonQueueSelect, static_cast<uint16_t>(q));
  return MmioRead<uint16_t>(common_ + kCommonQueueEnable) != 0;
}

bool PciTransport::SetUpQueue(int q, uint16_t size, uint16_t msix_entry, uint64_t desc,
                              uint64_t avail, uint64_t used) {
  if (q >= kMaxQueues) return false;
  MmioWrite<uint16_t>(common_ + kCommonQueueSelect, static_cast<uint16_t>(q));
  MmioWrite<uint16_t>(common_ + kCommonQueueSize, size);
  MmioWrite<uint16_t>(common_ + kCommonQueueMsixVector, msix_entry);
  if (MmioRead<uint16_t>(common_ + kCommonQueueMsixVector) != msix_entry) return false;
  // 4.1.3.1: 64-bit fields may be written as two 32-bit halves.
  const uint64_t addrs[3] = {desc, avail, used};
  const uint32_t regs[3] = {kCommonQueueDesc, kCommonQueueDriver, kCommonQueueDevice};
  for (int i = 0; i < 3; ++i) {
    MmioWrite<uint32_t>(common_ + regs[i], static_cast<uint32_t>(addrs[i]));
    MmioWrite<uint32_t>(common_ + regs[i] + 4, static_cast<uint32_t>(addrs[i] >> 32));
  }
  queue_notify_off_[q] = MmioRead<uint16_t>(common_ + kCommonQueueNotifyOff);
  MmioWrite<uint16_t>(common_ + kCommonQueueEnable, 1);
  return true;
}

void PciTransport::Notify(int q) const {
  if (q >= kMaxQueues) return;
  uint64_t addr = notify_ + uint64_t{queue_notify_off_[q]} * notify_multiplier_;
  MmioWrite<uint16_t>(addr, static_cast<uint16_t>(q));
}

bool PciTransport::EnableMsix(uint8_t config_vector, uint8_t queue_vector, uint16_t* queue_entry) {
  if (!msix_cap_) return false;
  pci::Address a = dev_.addr;
  uint16_t control = pci::Read16(a, msix_cap_ + kMsixControl);
  pci::Write16(a, msix_cap_ + kMsixControl, control | kMsixEnable | kMsixFunctionMask);
  *queue_entry = msix_entries_ > 1 ? 1 : 0;
  const uint8_t vectors[2] = {config_vector, queue_vector};
  uint32_t address = kMsiAddressBase | (LapicId() << 12);
  for (int e = 0; e <= *queue_entry; ++e) {
    uint64_t entry = msix_table_ + e * kMsixEntrySize;
    MmioWrite<uint32_t>(entry + 0, address);
    MmioWrite<uint32_t>(entry + 4, 0);
    // Data: the vector, fixed delivery, edge (SDM Vol. 3A 10.11.2); with a single entry both
    // causes share the queue vector.
    MmioWrite<uint32_t>(entry + 8, *queue_entry ? vectors[e] : queue_vector);
    MmioWrite<uint32_t>(entry + 12, 0);  // Vector Control: unmasked
  }
  pci::Write16(a, msix_cap_ + kMsixControl,
               static_cast<uint16_t>((control | kMsixEnable) & ~kMsixFunctionMask));
  pci::Write16(a, pci::kCommand, pci::Read16(a, pci::kCommand) | pci::kCommandIntxDisable);
  MmioWrite<uint16_t>(common_ + kCommonConfigMsixVector, 0);
  return MmioRead<uint16_t>(common_ + kCommonConfigMsixVector) == 0;
}

void PciTransport::DisableMsix() {
  if (!msix_cap_) return;
  MmioWrite<uint16_t>(common_ + kCommonConfigMsixVector, kMsiNoVector);
  uint16_t control = pci::Read16(dev_.addr, msix_cap_ + kMsixControl);
  pci::Write16(dev_.addr, msix_cap_ + kMsixControl, control & ~kMsixEnable);
}

uint8_t PciTransport::DeviceConfig8(uint32_t off) const {
  if (!device_ || off + 1 > device_len_) return 0xff;
  return MmioRead<uint8_t>(device_ + off);
}

uint16_t PciTransport::DeviceConfig16(uint32_t off) const {
  if (!device_ || off + 2 > device_len_) return 0xffff;
  return MmioRead<uint16_t>(device_ + off);
}

uint32_t PciTransport::DeviceConfig32(uint32_t off) const {
  if (!device_ || off + 4 > device_len_) return 0xffffffff;
  return MmioRead<uint32_t>(device_ + off);
}

void PciTransport::SetDeviceConfig32(uint32_t off, uint32_t value) const {
  if (device_ && off + 4 <= device_len_) MmioWrite<uint32_t>(device_ + off, value);
}

}  // namespace rt::virtio
