#include "devices/pci/pci_bus.h"

#include <algorithm>
#include <vector>

#include "base/bytes.h"
#include "devices/pci/config_space.h"
#include "devices/pci/host_bridge.h"

namespace vireo::pci {
namespace {

constexpr uint64_t kIoSpaceEnd = 0x10000;  // x86 ports are 16 bits
constexpr uint64_t kMemory32End = uint64_t{1} << 32;

uint16_t BarRegister(int index) { return static_cast<uint16_t>(reg::kBar0 + 4 * index); }

uint32_t ReadDword(PciDevice& device, uint16_t offset) {
  uint8_t bytes[4];
  device.ConfigRead(offset, bytes);
  return LoadLe<uint32_t>(bytes);
}

void WriteDword(PciDevice& device, uint16_t offset, uint32_t value) {
  uint8_t bytes[4];
  StoreLe(bytes, 0, value);
  device.ConfigWrite(offset, bytes);
}

uint16_t CommandBit(BarType type) {
  return type == BarType::kIo ? command::kIoSpace : command::kMemorySpace;
}

// Where the BAR decodes now (§6.2.5.1), or kBarUnmapped: decoding off, address 0, or a
// range that runs past the end of its address space.
uint64_t EffectiveAddress(PciDevice& device, const BarDefinition& bar, uint16_t command) {
  if (!(command & CommandBit(bar.type))) return kBarUnmapped;
  const uint32_t low = ReadDword(device, BarRegister(bar.index));
  uint64_t address = 0;
  uint64_t limit = 0;  // exclusive end of the address space; 0 means 2^64
  switch (bar.type) {
    case BarType::kIo:
      address = low & bar_bits::kIoAddressMask;
      limit = kIoSpaceEnd;
      break;
    case BarType::kMemory32:
      address = low & bar_bits::kMemoryAddressMask;
      limit = kMemory32End;
      break;
    case BarType::kMemory64:
      address = (low & bar_bits::kMemoryAddressMask) |
                (uint64_t{ReadDword(device, BarRegister(bar.index + 1))} << 32);
      break;
  }
  if (address == 0 || bar.size == 0) return kBarUnmapped;
  if (limit != 0 ? !RangeFits(address, bar.size, limit) : bar.size - 1 > ~address) {
    return kBarUnmapped;
  }
  return address;
}

bool Overlaps(uint64_t offset, size_t size, uint64_t start, uint64_t end) {
  return offset < end && start < offset + size;
}

}  // namespace

PciBus::PciBus(BarWindow mmio, BarWindow io)
    : mmio_router_(
          std::make_shared<PciBarRouter>("pci-mmio-bars", mmio.start, mmio.end - mmio.start)),
      io_router_(std::make_shared<PciBarRouter>("pci-io-bars", io.start, io.end - io.start)),
      mmio_allocator_(mmio.start, mmio.end),
      io_allocator_(io.start, io.end) {
  for (Slot& slot : slots_) slot.mapped.fill(kBarUnmapped);
  // The host bridge has no BARs, so adding it to an empty bus cannot fail.
  (void)AddDevice(std::make_shared<HostBridge>(), kHostBridgeSlot);
}

Result<int> PciBus::AddDevice(std::shared_ptr<PciDevice> device) {
  std::lock_guard lock(mutex_);
  for (int slot = 0; slot < kDevices; ++slot) {
    if (!slots_[slot].device) return AddLocked(std::move(device), slot);
  }
  return Fail("PCI: no free slot on bus 0 for {}", device->name());
}

Result<int> PciBus::AddDevice(std::shared_ptr<PciDevice> device, int slot) {
  std::lock_guard lock(mutex_);
  return AddLocked(std::move(device), slot);
}

Result<int> PciBus::AddLocked(std::shared_ptr<PciDevice> device, int slot) {
  if (slot < 0 || slot >= kDevices) return Fail("PCI: slot {} is not 0-31", slot);
  if (slots_[slot].device) {
    return Fail("PCI: slot {} already holds {}; cannot add {}", slot, slots_[slot].device->name(),
                device->name());
  }
  VIREO_TRY_STATUS(AssignBars(*device));
  slots_[slot].device = std::move(device);
  UpdateBars(slot);
  return slot;
}

Status PciBus::AssignBars(PciDevice& device) {
  // Largest first: with natural alignment, that leaves no holes between them.
  std::vector<BarDefinition> bars(device.bars().begin(), device.bars().end());
  std::stable_sort(bars.begin(), bars.end(),
                   [](const BarDefinition& a, const BarDefinition& b) { return a.size > b.size; });
  uint16_t enable = 0;
  for (const BarDefinition& bar : bars) {
    if (bar.index < 0 || bar.index + (bar.type == BarType::kMemory64 ? 1 : 0) >= kBarCount) {
      return Fail("PCI: {} declares BAR {}, outside BAR0-BAR5", device.name(), bar.index);
    }
    BarAllocator& allocator = bar.type == BarType::kIo ? io_allocator_ : mmio_allocator_;
    auto address = allocator.Allocate(bar.size);
    if (!address)
      return Wrap(fmt::format("PCI: {} BAR {}", device.name(), bar.index), address.error());
    WriteDword(device, BarRegister(bar.index), static_cast<uint32_t>(*address));
    if (bar.type == BarType::kMemory64) {
      WriteDword(device, BarRegister(bar.index + 1), static_cast<uint32_t>(*address >> 32));
    }
    enable |= CommandBit(bar.type);
  }
  if (enable != 0) {
    uint8_t bytes[2];
    device.ConfigRead(reg::kCommand, bytes);
    StoreLe<uint16_t>(bytes, 0, LoadLe<uint16_t>(bytes) | enable);
    device.ConfigWrite(reg::kCommand, bytes);
  }
  return {};
}

PciDevice* PciBus::Lookup(int device, int function, uint64_t offset, size_t size) {
  const bool well_formed = device >= 0 && device < kDevices && function >= 0 &&
                           function < kFunctions && (size == 1 || size == 2 || size == 4) &&
                           offset < kExtendedConfigSpaceSize && (offset & 3) + size <= 4;
  if (!well_formed) {
    bad_accesses_.fetch_add(1, std::memory_order_relaxed);
    return nullptr;
  }
  if (function != 0) return nullptr;  // single-function devices: a normal probe miss
  return slots_[device].device.get();
}

void PciBus::ConfigRead(int device, int function, uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  PciDevice* target = Lookup(device, function, offset, data.size());
  if (target == nullptr) {
    std::fill(data.begin(), data.end(), 0xff);
    return;
  }
  target->ConfigRead(static_cast<uint16_t>(offset), data);
}

void PciBus::ConfigWrite(int device, int function, uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mutex_);
  PciDevice* target = Lookup(device, function, offset, data.size());
  if (target == nullptr) return;
  target->ConfigWrite(static_cast<uint16_t>(offset), data);
  if (Overlaps(offset, data.size(), reg::kCommand, reg::kCommand + 2) ||
      Overlaps(offset, data.size(), reg::kBar0, reg::kBar0 + 4 * kBarCount)) {
    UpdateBars(device);
  }
}

void PciBus::RefreshBars(int slot) {
  std::lock_guard lock(mutex_);
  if (slot < 0 || slot >= kDevices || !slots_[slot].device) return;
  UpdateBars(slot);
}

void PciBus::UpdateBars(int slot) {
  Slot& s = slots_[slot];
  PciDevice& device = *s.device;
  uint8_t bytes[2];
  device.ConfigRead(reg::kCommand, bytes);
  const uint16_t command = LoadLe<uint16_t>(bytes);
  for (const BarDefinition& bar : device.bars()) {
    if (bar.index < 0 || bar.index >= kBarCount) continue;  // AssignBars refused these
    const uint64_t address = EffectiveAddress(device, bar, command);
    const uint64_t old = s.mapped[bar.index];
    if (address == old) continue;
    s.mapped[bar.index] = address;
    PciBarRouter& router = bar.type == BarType::kIo ? *io_router_ : *mmio_router_;
    if (address == kBarUnmapped) {
      router.Unmap(slot, bar.index);
    } else {
      router.Map(slot, bar.index, address, bar.size, s.device);
    }
    device.BarMoved(bar.index, old, address);
  }
}

}  // namespace vireo::pci
