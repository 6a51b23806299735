// ConfigSpace: one PCI function's type 0 configuration header (PCI Local Bus 3.0 §6.1,
// Figure 6-1) as 256 bytes with a write mask per byte, plus the capability list (§6.7).
//
//   0x00 Vendor ID       0x02 Device ID        0x04 Command          0x06 Status
//   0x08 Revision ID     0x09 Class Code (prog-if, sub-class, base class)
//   0x0c Cache Line Size 0x0d Latency Timer    0x0e Header Type      0x0f BIST
//   0x10-0x27 Base Address Registers 0-5       0x28 CardBus CIS Pointer
//   0x2c Subsystem Vendor ID  0x2e Subsystem ID    0x30 Expansion ROM Base Address
//   0x34 Capabilities Pointer 0x3c Interrupt Line  0x3d Interrupt Pin
//   0x3e Min_Gnt   0x3f Max_Lat   0x40-0xff capabilities
//
// Each byte has two masks: bits the guest may write (read-write) and bits a guest write
// of 1 clears (write-1-to-clear, the Status error bits); every other bit is read-only.
// BARs need no code of their own: their write mask is ~(size - 1) over the address bits,
// so the sizing protocol (§6.2.5.1: write all ones, read back) falls out of the masks.
// The extended space of a PCI Express function (0x100-0xfff, reached only through ECAM)
// reads as zero, so a walk of extended capabilities ends at once.
//
// Plain data with no lock (rule 4): the device that owns it serialises access.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "devices/pci/pci_device.h"

namespace vireo::pci {

inline constexpr size_t kConfigSpaceSize = 256;
inline constexpr size_t kExtendedConfigSpaceSize = 4096;

// §6.1 register offsets, named as in the specification.
namespace reg {
inline constexpr uint16_t kVendorId = 0x00;
inline constexpr uint16_t kDeviceId = 0x02;
inline constexpr uint16_t kCommand = 0x04;
inline constexpr uint16_t kStatus = 0x06;
inline constexpr uint16_t kRevisionId = 0x08;
inline constexpr uint16_t kClassCode = 0x09;  // 3 bytes: programming interface first
inline constexpr uint16_t kCacheLineSize = 0x0c;
inline constexpr uint16_t kLatencyTimer = 0x0d;
inline constexpr uint16_t kHeaderType = 0x0e;
inline constexpr uint16_t kBist = 0x0f;
inline constexpr uint16_t kBar0 = 0x10;
inline constexpr uint16_t kCardbusCisPointer = 0x28;
inline constexpr uint16_t kSubsystemVendorId = 0x2c;
inline constexpr uint16_t kSubsystemId = 0x2e;
inline constexpr uint16_t kExpansionRomBase = 0x30;
inline constexpr uint16_t kCapabilitiesPointer = 0x34;
inline constexpr uint16_t kInterruptLine = 0x3c;
inline constexpr uint16_t kInterruptPin = 0x3d;
inline constexpr uint16_t kMinGnt = 0x3e;
inline constexpr uint16_t kMaxLat = 0x3f;
inline constexpr uint16_t kCapabilitiesStart = 0x40;  // first byte after the header
}  // namespace reg

// §6.2.2 Command register bits.
namespace command {
inline constexpr uint16_t kIoSpace = 1 << 0;
inline constexpr uint16_t kMemorySpace = 1 << 1;
inline constexpr uint16_t kBusMaster = 1 << 2;
inline constexpr uint16_t kParityErrorResponse = 1 << 6;
inline constexpr uint16_t kSerrEnable = 1 << 8;
inline constexpr uint16_t kInterruptDisable = 1 << 10;
}  // namespace command

// §6.2.3 Status register bits.
namespace status {
inline constexpr uint16_t kInterruptStatus = 1 << 3;
inline constexpr uint16_t kCapabilitiesList = 1 << 4;
inline constexpr uint16_t kMasterDataParityError = 1 << 8;  // RW1C
inline constexpr uint16_t kSignaledTargetAbort = 1 << 11;   // RW1C
inline constexpr uint16_t kReceivedTargetAbort = 1 << 12;   // RW1C
inline constexpr uint16_t kReceivedMasterAbort = 1 << 13;   // RW1C
inline constexpr uint16_t kSignaledSystemError = 1 << 14;   // RW1C
inline constexpr uint16_t kDetectedParityError = 1 << 15;   // RW1C
inline constexpr uint16_t kWriteOneToClear = kMasterDataParityError | kSignaledTargetAbort |
                                             kReceivedTargetAbort | kReceivedMasterAbort |
                                             kSignaledSystemError | kDetectedParityError;
}  // namespace status

// §6.2.5.1 low bits of a BAR.
namespace bar_bits {
inline constexpr uint32_t kIoSpace = 1 << 0;
inline constexpr uint32_t kMemoryType64 = 2 << 1;
inline constexpr uint32_t kPrefetchable = 1 << 3;
inline constexpr uint32_t kIoAddressMask = ~uint32_t{0x3};
inline constexpr uint32_t kMemoryAddressMask = ~uint32_t{0xf};
}  // namespace bar_bits

// Appendix H capability ids used in Vireo.
namespace capability_id {
inline constexpr uint8_t kVendorSpecific = 0x09;
inline constexpr uint8_t kMsix = 0x11;
}  // namespace capability_id

// What identifies a function (§6.2.1). The class code is base class, sub-class,
// programming interface, as lspci prints it ("06 00 00": host bridge).
struct PciIds {
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint8_t revision_id = 0;
  uint8_t class_code = 0;
  uint8_t subclass = 0;
  uint8_t prog_if = 0;
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;
};

class ConfigSpace {
 public:
  explicit ConfigSpace(const PciIds& ids);

  // Guest access, as the bus forwards it: any offset and length. Bytes below 256 follow
  // the masks; 256-4095 read as zero and ignore writes; beyond 4095 read all ones.
  void Read(uint64_t offset, std::span<uint8_t> data) const;
  void Write(uint64_t offset, std::span<const uint8_t> data);

  // --- Set-up, by the device model before the function is on a bus. Mistakes are
  // configuration errors (Status), never guest data.

  // Declares a BAR: sets its type bits and write mask, and makes the Command register's
  // I/O or Memory Space bit writable.
  Status AddBar(const BarDefinition& bar);
  std::span<const BarDefinition> bars() const { return bars_; }

  // Appends a capability of `length` bytes (the 2-byte id/next header included) to the
  // list, DWORD-aligned in 0x40-0xff (§6.7), and returns its offset. The body is zero
  // and read-only until the device sets bytes and masks.
  Result<uint8_t> AddCapability(uint8_t id, uint8_t length);

  // --- Device-side access: ignores the masks (the device owns read-only bits too).
  // Offsets must lie inside the 256-byte header: a bad one is a VMM bug and aborts.
  uint8_t Get8(uint16_t offset) const;
  uint16_t Get16(uint16_t offset) const;
  uint32_t Get32(uint16_t offset) const;
  void Set8(uint16_t offset, uint8_t value);
  void Set16(uint16_t offset, uint16_t value);
  void Set32(uint16_t offset, uint32_t value);
  void SetBytes(uint16_t offset, std::span<const uint8_t> bytes);
  // The guest-visible masks of `size` (1, 2 or 4) bytes at `offset`, little-endian.
  void SetMasks(uint16_t offset, size_t size, uint32_t writable, uint32_t write_one_to_clear = 0);

  uint16_t command() const { return Get16(reg::kCommand); }

  // --- Snapshots (rule 4): the 256 bytes as they are, and a restore that takes only the
  // bits a guest could have written (read-only identity, BAR type bits and capability
  // headers stay as the device model built them), so a hostile snapshot can set no more
  // than a guest could.
  const std::array<uint8_t, kConfigSpaceSize>& raw() const { return bytes_; }
  void RestoreWritable(std::span<const uint8_t, kConfigSpaceSize> saved);
  // The address programmed into BAR `index` (both halves of a 64-bit BAR), low type
  // bits removed; 0 for a BAR that is not declared.
  uint64_t BarAddress(int index) const;

 private:
  const BarDefinition* FindBar(int index) const;

  std::array<uint8_t, kConfigSpaceSize> bytes_{};
  std::array<uint8_t, kConfigSpaceSize> writable_{};
  std::array<uint8_t, kConfigSpaceSize> write_one_to_clear_{};
  std::vector<BarDefinition> bars_;
  uint8_t last_capability_ = 0;  // offset of the list's tail, 0 while empty
  uint16_t next_capability_ = reg::kCapabilitiesStart;
};

// Follows the capability list from the Capabilities Pointer, as a guest driver would,
// and returns the offset of the first capability with `id`, or 0. Bounded: at most 48
// hops (the most DWORD-aligned capabilities 0x40-0xff can hold), so a looping list ends.
uint8_t FindCapability(const ConfigSpace& config, uint8_t id);

}  // namespace vireo::pci
