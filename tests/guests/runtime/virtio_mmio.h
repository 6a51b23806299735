// virtio-mmio transport (virtio 1.2 section 4.2), modern (Version 2) devices only: the register
// map, and discovery of devices from the kernel command line or by probing Vireo's slots.
#pragma once

#include <stdint.h>

#include "boot_info.h"
#include "io.h"

namespace rt::virtio {

// 4.2.2 MMIO Device Register Layout (offsets from the slot base).
inline constexpr uint32_t kMagicValue = 0x000;  // "virt"
inline constexpr uint32_t kVersion = 0x004;     // 2 for modern devices
inline constexpr uint32_t kDeviceId = 0x008;
inline constexpr uint32_t kVendorId = 0x00c;
inline constexpr uint32_t kDeviceFeatures = 0x010;
inline constexpr uint32_t kDeviceFeaturesSel = 0x014;
inline constexpr uint32_t kDriverFeatures = 0x020;
inline constexpr uint32_t kDriverFeaturesSel = 0x024;
inline constexpr uint32_t kQueueSel = 0x030;
inline constexpr uint32_t kQueueNumMax = 0x034;
inline constexpr uint32_t kQueueNum = 0x038;
inline constexpr uint32_t kQueueReady = 0x044;
inline constexpr uint32_t kQueueNotify = 0x050;
inline constexpr uint32_t kInterruptStatus = 0x060;
inline constexpr uint32_t kInterruptAck = 0x064;
inline constexpr uint32_t kStatus = 0x070;
inline constexpr uint32_t kQueueDescLow = 0x080;
inline constexpr uint32_t kQueueDescHigh = 0x084;
inline constexpr uint32_t kQueueDriverLow = 0x090;  // the available ring
inline constexpr uint32_t kQueueDriverHigh = 0x094;
inline constexpr uint32_t kQueueDeviceLow = 0x0a0;  // the used ring
inline constexpr uint32_t kQueueDeviceHigh = 0x0a4;
inline constexpr uint32_t kConfigGeneration = 0x0fc;
inline constexpr uint32_t kConfig = 0x100;

inline constexpr uint32_t kMagic = 0x74726976;
inline constexpr uint32_t kModernVersion = 2;

// 4.2.2 InterruptStatus bits.
inline constexpr uint32_t kInterruptUsedBuffer = 1u << 0;
inline constexpr uint32_t kInterruptConfigChange = 1u << 1;

// 2.1 Device Status Field.
inline constexpr uint32_t kStatusAcknowledge = 1;
inline constexpr uint32_t kStatusDriver = 2;
inline constexpr uint32_t kStatusDriverOk = 4;
inline constexpr uint32_t kStatusFeaturesOk = 8;
inline constexpr uint32_t kStatusNeedsReset = 0x40;
inline constexpr uint32_t kStatusFailed = 0x80;

// 6 Reserved Feature Bits.
inline constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;
inline constexpr uint64_t kFeatureEventIdx = 1ull << 29;
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;

// 5 Device Types.
inline constexpr uint32_t kDeviceNet = 1;
inline constexpr uint32_t kDeviceBlock = 2;
inline constexpr uint32_t kDeviceConsole = 3;
inline constexpr uint32_t kDeviceEntropy = 4;

const char* DeviceName(uint32_t device_id);

// One transport window: base address, length and the GSI its interrupt arrives on.
struct MmioSlot {
  uint64_t base;
  uint64_t size;
  uint32_t gsi;
  bool from_cmdline;  // false: found by probing Vireo's fixed slots
};

// Register access for one slot. 4.2.2.2: 32-bit aligned accesses for every register.
class MmioRegs {
 public:
  MmioRegs() = default;
  explicit MmioRegs(uint64_t base) : base_(base) {}
  uint64_t base() const { return base_; }
  uint32_t Read(uint32_t reg) const { return MmioRead<uint32_t>(base_ + reg); }
  void Write(uint32_t reg, uint32_t v) const { MmioWrite<uint32_t>(base_ + reg, v); }
  void WriteAddress(uint32_t low_reg, uint64_t addr) const {
    Write(low_reg, static_cast<uint32_t>(addr));
    Write(low_reg + 4, static_cast<uint32_t>(addr >> 32));
  }

 private:
  uint64_t base_;
};

// Parses one Linux-style "SIZE@BASE:GSI[:ID]" value (the part after "virtio_mmio.device=");
// SIZE may carry a K/M/G suffix, numbers are decimal or 0x-prefixed hex. False if malformed.
bool ParseMmioDeviceParam(const char* value, int len, MmioSlot& out);

// Vireo's fixed slots (src/arch/x86/layout.h): 4 KiB each from 0xfe000000, GSIs below.
inline constexpr uint64_t kVireoMmioBase = 0xfe000000;
inline constexpr uint64_t kVireoMmioSlotSize = 0x1000;
inline constexpr uint32_t kVireoMmioGsis[] = {5, 6, 7, 10, 11, 12, 14, 15};
inline constexpr int kMaxSlots = 16;

// Every "virtio_mmio.device=" on the cmdline, in order; if there are none, the Vireo slots whose
// MagicValue reads "virt" (an empty slot reads all ones). Returns the number found.
int DiscoverSlots(const BootInfo& info, MmioSlot* out, int max);

// The `instance`-th slot (0-based) holding a device with `device_id`, after discovery; prints
// what it found. False if there is none.
bool FindDevice(const BootInfo& info, uint32_t device_id, MmioSlot& out, int instance = 0);

}  // namespace rt::virtio
