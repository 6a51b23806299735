// The snapshot directory's `state` file: a fixed header (magic, format version, payload size,
// CRC-32 of the payload) and the payload, encoded with state_codec.h: the VM's configuration,
// the memory file's layout (and for a diff, its parent and dirty-page bitmaps), the
// accelerator's VM state, every vCPU's state and the devices' state.
// docs/snapshot-migration.md describes the format byte by byte.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "accel/vcpu_state.h"
#include "base/result.h"
#include "devices/acpi/pm_device.h"
#include "devices/irqchip/hpet.h"
#include "devices/legacy/cmos_rtc.h"
#include "devices/legacy/i8042.h"
#include "devices/legacy/serial_8250.h"
#include "memory/guest_memory.h"
#include "vmm/snapshot/virtio_state.h"
#include "vmm/vm_config.h"

namespace vireo::snapshot {

inline constexpr char kMagic[8] = {'V', 'I', 'R', 'E', 'O', 'S', 'N', 'P'};
inline constexpr uint32_t kFormatVersion = 2;
// Version 1 (no HPET, no save instant for the PIT, no device records) is still read: it is
// version 2 without those fields.
inline constexpr uint32_t kOldestReadableVersion = 1;
inline constexpr size_t kHeaderSize = 24;  // magic, version, flags, payload size, CRC-32
inline constexpr uint64_t kPageSize = 4096;
// Bounds for a hostile file: nothing Vireo writes comes near them.
inline constexpr size_t kMaxStateFileSize = 256u << 20;
inline constexpr size_t kMaxChainDepth = 64;

inline constexpr char kStateFileName[] = "state";
inline constexpr char kMemoryFileName[] = "memory";

enum class SnapshotType : uint8_t { kFull = 0, kDiff = 1 };

// The devices Vireo can snapshot so far (docs/snapshot-migration.md lists what is not).
struct DeviceStates {
  Serial8250State com1;
  CmosRtcState rtc;
  I8042State i8042;
  AcpiPmState pm;
  VirtioStates virtio;  // transports and queues, the PCI host bridge and 0xCF8 latch
  std::optional<irqchip::HpetState> hpet;  // with --hpet on
};

struct SnapshotState {
  VmConfig config;  // guest-visible parts only; host-side options come from the command line
  std::string accelerator;  // the accelerator the snapshot was taken on (informational)
  SnapshotType type = SnapshotType::kFull;
  // The memory file holds `ram` regions back to back, each at its page-aligned offset.
  std::vector<RamRange> ram;
  // kDiff: the snapshot directory this one applies on top of, and per region a bitmap of the
  // 4 KiB pages the memory file holds (bit i of word i/64 = page i).
  std::string parent;
  std::vector<std::vector<uint64_t>> dirty;
  accel::VmSavedState vm;
  std::vector<accel::VcpuSavedState> vcpus;
  DeviceStates devices;
};

std::vector<uint8_t> EncodeStateFile(const SnapshotState& state);
// Refuses, with a message naming the problem: anything too short or without the magic
// ("not a Vireo snapshot"), another format version, a size that disagrees with the header
// (truncated), a checksum mismatch, and any field out of range.
Result<SnapshotState> DecodeStateFile(std::span<const uint8_t> file);

// The memory file's size for `ram`.
uint64_t MemoryFileSize(std::span<const RamRange> ram);

}  // namespace vireo::snapshot
