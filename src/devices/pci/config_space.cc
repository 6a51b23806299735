#include "devices/pci/config_space.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "base/bytes.h"

namespace vireo::pci {
namespace {

// §6.7: capabilities are DWORD-aligned; the low two bits of every pointer are reserved.
constexpr uint8_t kCapabilityAlignment = 4;
constexpr int kMaxCapabilityHops = (kConfigSpaceSize - reg::kCapabilitiesStart) / 4;

// Command bits a function always implements; I/O and Memory Space are added per BAR
// (§6.2.2: hardwired to 0 when the function has nothing in that space).
constexpr uint16_t kBaseCommandMask = command::kBusMaster | command::kParityErrorResponse |
                                      command::kSerrEnable | command::kInterruptDisable;

// Device-side offsets come from Vireo's own code; a bad one is a VMM bug (rule 2).
void CheckRange(uint16_t offset, size_t size) {
  if (!RangeFits(offset, size, kConfigSpaceSize)) {
    fmt::print(stderr, "vireo: PCI config access {:#x}+{} outside the 256-byte header\n", offset,
               size);
    std::abort();
  }
}

uint16_t BarRegister(int index) { return static_cast<uint16_t>(reg::kBar0 + 4 * index); }

}  // namespace

ConfigSpace::ConfigSpace(const PciIds& ids) {
  Set16(reg::kVendorId, ids.vendor_id);
  Set16(reg::kDeviceId, ids.device_id);
  Set8(reg::kRevisionId, ids.revision_id);
  Set8(reg::kClassCode, ids.prog_if);
  Set8(reg::kClassCode + 1, ids.subclass);
  Set8(reg::kClassCode + 2, ids.class_code);
  Set16(reg::kSubsystemVendorId, ids.subsystem_vendor_id);
  Set16(reg::kSubsystemId, ids.subsystem_id);
  SetMasks(reg::kCommand, 2, kBaseCommandMask);
  SetMasks(reg::kStatus, 2, 0, status::kWriteOneToClear);
  SetMasks(reg::kCacheLineSize, 1, 0xff);
  SetMasks(reg::kInterruptLine, 1, 0xff);  // scratch for the OS (§6.2.4)
}

void ConfigSpace::Read(uint64_t offset, std::span<uint8_t> data) const {
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    if (at < offset || at >= kExtendedConfigSpaceSize) {
      data[i] = 0xff;
    } else {
      data[i] = at < kConfigSpaceSize ? bytes_[at] : 0;
    }
  }
}

void ConfigSpace::Write(uint64_t offset, std::span<const uint8_t> data) {
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t at = offset + i;
    if (at < offset || at >= kConfigSpaceSize) return;
    const uint8_t value = data[i];
    uint8_t next = static_cast<uint8_t>((bytes_[at] & ~writable_[at]) | (value & writable_[at]));
    next = static_cast<uint8_t>(next & ~(value & write_one_to_clear_[at]));
    bytes_[at] = next;
  }
}

void ConfigSpace::RestoreWritable(std::span<const uint8_t, kConfigSpaceSize> saved) {
  for (size_t i = 0; i < kConfigSpaceSize; ++i) {
    bytes_[i] = static_cast<uint8_t>((bytes_[i] & ~writable_[i]) | (saved[i] & writable_[i]));
  }
}

const BarDefinition* ConfigSpace::FindBar(int index) const {
  for (const BarDefinition& bar : bars_) {
    if (bar.index == index) return &bar;
  }
  return nullptr;
}

Status ConfigSpace::AddBar(const BarDefinition& bar) {
  const bool is64 = bar.type == BarType::kMemory64;
  const int last = bar.index + (is64 ? 1 : 0);
  if (bar.index < 0 || last >= kBarCount) {
    return Fail("PCI BAR {}: index out of range (BAR0-BAR5; a 64-bit BAR takes two)", bar.index);
  }
  for (const BarDefinition& other : bars_) {
    const int other_last = other.index + (other.type == BarType::kMemory64 ? 1 : 0);
    if (bar.index <= other_last && other.index <= last) {
      return Fail("PCI BAR {} overlaps BAR {}", bar.index, other.index);
    }
  }
  if (!std::has_single_bit(bar.size)) {
    return Fail("PCI BAR {}: size {:#x} is not a power of two", bar.index, bar.size);
  }
  const uint16_t at = BarRegister(bar.index);
  uint64_t mask = ~(bar.size - 1);
  switch (bar.type) {
    case BarType::kIo:
      // §6.2.5.1: I/O BARs claim at most 256 bytes; x86 decodes 16 bits of port.
      if (bar.size < 4 || bar.size > 256 || bar.prefetchable) {
        return Fail("PCI BAR {}: an I/O BAR is 4-256 bytes and never prefetchable", bar.index);
      }
      Set32(at, bar_bits::kIoSpace);
      SetMasks(at, 4, static_cast<uint32_t>(mask) & bar_bits::kIoAddressMask & 0xffff);
      writable_[reg::kCommand] |= command::kIoSpace;
      break;
    case BarType::kMemory32:
    case BarType::kMemory64: {
      const uint64_t max = is64 ? (uint64_t{1} << 63) : (uint64_t{1} << 31);
      if (bar.size < 16 || bar.size > max) {
        return Fail("PCI BAR {}: memory BAR size {:#x} is outside 16 bytes-{:#x}", bar.index,
                    bar.size, max);
      }
      const uint32_t low =
          (is64 ? bar_bits::kMemoryType64 : 0) | (bar.prefetchable ? bar_bits::kPrefetchable : 0);
      Set32(at, low);
      SetMasks(at, 4, static_cast<uint32_t>(mask) & bar_bits::kMemoryAddressMask);
      if (is64) {
        Set32(at + 4, 0);
        SetMasks(at + 4, 4, static_cast<uint32_t>(mask >> 32));
      }
      writable_[reg::kCommand] |= command::kMemorySpace;
      break;
    }
  }
  bars_.push_back(bar);
  return {};
}

uint64_t ConfigSpace::BarAddress(int index) const {
  const BarDefinition* bar = FindBar(index);
  if (bar == nullptr) return 0;
  const uint32_t low = Get32(BarRegister(index));
  switch (bar->type) {
    case BarType::kIo:
      return low & bar_bits::kIoAddressMask;
    case BarType::kMemory32:
      return low & bar_bits::kMemoryAddressMask;
    case BarType::kMemory64:
      return (low & bar_bits::kMemoryAddressMask) | (uint64_t{Get32(BarRegister(index + 1))} << 32);
  }
  return 0;
}

Result<uint8_t> ConfigSpace::AddCapability(uint8_t id, uint8_t length) {
  const uint16_t at = next_capability_;
  if (length < 2 || !RangeFits(at, length, kConfigSpaceSize)) {
    return Fail("PCI capability {:#04x} of {} bytes does not fit at {:#x} (space ends at {:#x})",
                id, length, at, kConfigSpaceSize);
  }
  Set8(at, id);
  Set8(at + 1, 0);  // Next Pointer: end of list
  if (last_capability_ == 0) {
    Set8(reg::kCapabilitiesPointer, static_cast<uint8_t>(at));
    Set16(reg::kStatus, Get16(reg::kStatus) | status::kCapabilitiesList);
  } else {
    Set8(last_capability_ + 1, static_cast<uint8_t>(at));
  }
  last_capability_ = static_cast<uint8_t>(at);
  next_capability_ =
      static_cast<uint16_t>((at + length + kCapabilityAlignment - 1) & ~(kCapabilityAlignment - 1));
  return static_cast<uint8_t>(at);
}

uint8_t ConfigSpace::Get8(uint16_t offset) const {
  CheckRange(offset, 1);
  return bytes_[offset];
}

uint16_t ConfigSpace::Get16(uint16_t offset) const {
  CheckRange(offset, 2);
  return LoadLe<uint16_t>(bytes_, offset);
}

uint32_t ConfigSpace::Get32(uint16_t offset) const {
  CheckRange(offset, 4);
  return LoadLe<uint32_t>(bytes_, offset);
}

void ConfigSpace::Set8(uint16_t offset, uint8_t value) {
  CheckRange(offset, 1);
  bytes_[offset] = value;
}

void ConfigSpace::Set16(uint16_t offset, uint16_t value) {
  CheckRange(offset, 2);
  StoreLe(bytes_, offset, value);
}

void ConfigSpace::Set32(uint16_t offset, uint32_t value) {
  CheckRange(offset, 4);
  StoreLe(bytes_, offset, value);
}

void ConfigSpace::SetBytes(uint16_t offset, std::span<const uint8_t> bytes) {
  CheckRange(offset, bytes.size());
  std::copy(bytes.begin(), bytes.end(), bytes_.begin() + offset);
}

void ConfigSpace::SetMasks(uint16_t offset, size_t size, uint32_t writable,
                           uint32_t write_one_to_clear) {
  if (size == 0 || size > 4) CheckRange(kConfigSpaceSize, 1);  // aborts: a VMM bug
  CheckRange(offset, size);
  for (size_t i = 0; i < size; ++i) {
    writable_[offset + i] = static_cast<uint8_t>(writable >> (8 * i));
    write_one_to_clear_[offset + i] = static_cast<uint8_t>(write_one_to_clear >> (8 * i));
  }
}

uint8_t FindCapability(const ConfigSpace& config, uint8_t id) {
  if (!(config.Get16(reg::kStatus) & status::kCapabilitiesList)) return 0;
  uint8_t at = config.Get8(reg::kCapabilitiesPointer) & ~(kCapabilityAlignment - 1);
  for (int hop = 0; hop < kMaxCapabilityHops && at >= reg::kCapabilitiesStart; ++hop) {
    if (config.Get8(at) == id) return at;
    at = config.Get8(at + 1) & ~(kCapabilityAlignment - 1);
  }
  return 0;
}

}  // namespace vireo::pci
