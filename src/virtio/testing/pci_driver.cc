#include "virtio/testing/pci_driver.h"

#include <cstdlib>
#include <utility>

#include "base/bytes.h"
#include "virtio/pci_common_cfg.h"
#include "virtio/status.h"

namespace vireo::virtio::testing {

namespace cc = common_cfg;

PciTestDriver::PciTestDriver(std::shared_ptr<PciTransport> transport)
    : transport_(std::move(transport)) {
  auto slot = bus_.AddDevice(transport_);
  if (!slot) std::abort();
  slot_ = *slot;
}

uint32_t PciTestDriver::Cfg(uint16_t offset, size_t size) {
  uint8_t bytes[4] = {};
  bus_.ConfigRead(slot_, 0, offset, std::span(bytes, size));
  return LoadLe<uint32_t>(bytes);
}

void PciTestDriver::SetCfg(uint16_t offset, size_t size, uint32_t value) {
  uint8_t bytes[4];
  StoreLe(bytes, 0, value);
  bus_.ConfigWrite(slot_, 0, offset, std::span(bytes, size));
}

uint64_t PciTestDriver::BarBase() {
  const uint16_t bar = static_cast<uint16_t>(pci::reg::kBar0 + 4 * PciTransport::kBar);
  return (Cfg(bar, 4) & pci::bar_bits::kMemoryAddressMask) | uint64_t{Cfg(bar + 4, 4)} << 32;
}

uint64_t PciTestDriver::Mmio(uint64_t address, size_t size) {
  uint8_t bytes[8] = {};
  bus_.mmio_router()->Read(address - kMmioWindow.start, std::span(bytes, size));
  return LoadLe<uint64_t>(bytes);
}

void PciTestDriver::SetMmio(uint64_t address, size_t size, uint64_t value) {
  uint8_t bytes[8];
  StoreLe(bytes, 0, value);
  bus_.mmio_router()->Write(address - kMmioWindow.start, std::span(bytes, size));
}

uint8_t PciTestDriver::Status() { return static_cast<uint8_t>(Bar(cc::kDeviceStatus, 1)); }

void PciTestDriver::SetStatus(uint8_t value) { SetBar(cc::kDeviceStatus, 1, value); }

std::map<uint8_t, VirtioPciCap> PciTestDriver::VirtioCaps(uint8_t* msix_at) {
  std::map<uint8_t, VirtioPciCap> caps;
  auto at = static_cast<uint8_t>(Cfg(pci::reg::kCapabilitiesPointer, 1));
  for (int hops = 0; at != 0 && hops < 48; ++hops) {
    const auto id = static_cast<uint8_t>(Cfg(at, 1));
    if (id == pci::capability_id::kMsix && msix_at != nullptr) *msix_at = at;
    if (id == pci::capability_id::kVendorSpecific) {
      const auto type = static_cast<uint8_t>(Cfg(at + pci_cap::kCfgType, 1));
      VirtioPciCap cap{.at = at,
                       .cap_len = static_cast<uint8_t>(Cfg(at + pci_cap::kCapLen, 1)),
                       .bar = static_cast<uint8_t>(Cfg(at + pci_cap::kBar, 1)),
                       .offset = Cfg(at + pci_cap::kOffset, 4),
                       .length = Cfg(at + pci_cap::kLength, 4)};
      // Not pci_cfg_data of the PCI_CFG capability: reading it accesses the BAR.
      if (type == pci_cap::kNotifyCfg) {
        cap.notify_off_multiplier = Cfg(at + pci_cap::kNotifyOffMultiplier, 4);
      }
      caps[type] = cap;
    }
    at = static_cast<uint8_t>(Cfg(at + 1, 1));
  }
  return caps;
}

bool PciTestDriver::EnableMsix(uint64_t address, uint32_t data) {
  uint8_t cap = 0;
  VirtioCaps(&cap);
  if (cap == 0) return false;
  const uint16_t vectors = (Cfg(cap + pci::msix::kMessageControl, 2) & 0x7ff) + 1;
  for (uint16_t v = 0; v < vectors; ++v) {
    const uint64_t entry = transport_->msix_table_offset() + pci::msix::kEntrySize * v;
    const uint64_t message = address | uint64_t{v} << 12;
    SetBar(entry + pci::msix::kMessageAddress, 4, static_cast<uint32_t>(message));
    SetBar(entry + pci::msix::kMessageUpperAddress, 4, static_cast<uint32_t>(message >> 32));
    SetBar(entry + pci::msix::kMessageData, 4, data + v);
    SetBar(entry + pci::msix::kVectorControl, 4, 0);
  }
  SetCfg(cap + pci::msix::kMessageControl, 2, pci::msix::kEnable);
  return true;
}

uint8_t PciTestDriver::Negotiate(uint64_t features) {
  constexpr uint8_t kAck = DeviceStatus::kAcknowledge;
  constexpr uint8_t kDrv = DeviceStatus::kDriver;
  SetStatus(0);
  SetStatus(kAck);
  SetStatus(kAck | kDrv);
  for (uint32_t sel = 0; sel < 2; ++sel) {
    SetBar(cc::kDriverFeatureSelect, 4, sel);
    SetBar(cc::kDriverFeature, 4, static_cast<uint32_t>(features >> (32 * sel)));
  }
  SetStatus(kAck | kDrv | DeviceStatus::kFeaturesOk);
  return Status();
}

void PciTestDriver::SetupQueue(uint16_t index, const TestDriver& driver, uint16_t vector) {
  SetBar(cc::kQueueSelect, 2, index);
  SetBar(cc::kQueueSize, 2, driver.size());
  for (auto [field, addr] : {std::pair{cc::kQueueDesc, driver.desc_table()},
                             std::pair{cc::kQueueDriver, driver.avail_ring()},
                             std::pair{cc::kQueueDevice, driver.used_ring()}}) {
    SetBar(field, 4, static_cast<uint32_t>(addr));
    SetBar(field + 4, 4, static_cast<uint32_t>(addr >> 32));
  }
  SetBar(cc::kQueueMsixVector, 2, vector);
  SetBar(cc::kQueueEnable, 2, 1);
}

void PciTestDriver::Kick(uint16_t queue) {
  auto address = transport_->notify_address(queue);
  if (!address) std::abort();
  SetMmio(*address, 2, queue);
}

}  // namespace vireo::virtio::testing
