// Msix: the MSI-X capability, vector table and Pending Bit Array of one function (PCI
// Local Bus 3.0 §6.8.2).
//
// Capability structure (12 bytes, id 11h), in configuration space:
//   +0 Capability ID   +1 Next Pointer
//   +2 Message Control  bits 10:0 Table Size (N - 1, RO), 14 Function Mask, 15 MSI-X Enable
//   +4 Table Offset/Table BIR   bits 2:0 BAR index, 31:3 offset (QWORD-aligned) in it
//   +8 PBA Offset/PBA BIR       the same for the Pending Bit Array
// Table entry (16 bytes per vector, §6.8.2.6-9), in a memory BAR:
//   +0 Message Address  +4 Message Upper Address  +8 Message Data
//   +12 Vector Control  bit 0 Mask Bit (1 after reset)
// Pending Bit Array: one bit per vector, in QWORDs (§6.8.2.10).
//
// A vector is masked when its Mask Bit or the Function Mask is set. Notify() on a masked
// vector sets its pending bit instead of sending; clearing the mask sends the pending
// message once and clears the bit (§6.8.3.4). Software must use aligned DWORD or QWORD
// accesses to the table and PBA (§6.8.2); anything else is ignored (reads all ones) and
// counted. The configuration-space half lives in the function's ConfigSpace: the device
// calls ConfigWritten() after each configuration write so this model sees Enable and
// Function Mask change.
//
// Thread-safe: device threads call Notify() while vCPUs access the table. Messages go
// out through the MsiSink under the model's lock, so a message is never sent twice or
// lost across an unmask; SendMsi must not call back into this object.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "base/result.h"
#include "devices/pci/config_space.h"

namespace vireo::pci {

// Where interrupts go: the VMM implements it with KVM_SIGNAL_MSI, or GSI routing and an
// irqfd. Called from whichever thread notified or unmasked.
class MsiSink {
 public:
  virtual ~MsiSink() = default;
  virtual void SendMsi(uint64_t address, uint32_t data) = 0;
};

namespace msix {
inline constexpr uint8_t kCapabilityLength = 12;
inline constexpr uint16_t kMessageControl = 2;  // offsets within the capability
inline constexpr uint16_t kTableOffsetBir = 4;
inline constexpr uint16_t kPbaOffsetBir = 8;
inline constexpr uint16_t kTableSizeMask = 0x07ff;
inline constexpr uint16_t kFunctionMask = 1 << 14;
inline constexpr uint16_t kEnable = 1 << 15;
inline constexpr uint32_t kBirMask = 0x7;

inline constexpr uint64_t kEntrySize = 16;
inline constexpr uint64_t kMessageAddress = 0;  // offsets within a table entry
inline constexpr uint64_t kMessageUpperAddress = 4;
inline constexpr uint64_t kMessageData = 8;
inline constexpr uint64_t kVectorControl = 12;
inline constexpr uint32_t kMaskBit = 1 << 0;

inline constexpr uint16_t kMaxVectors = 2048;
inline constexpr uint16_t kNoVector = 0xffff;  // virtio's VIRTIO_MSI_NO_VECTOR
}  // namespace msix

// The vector table and Pending Bit Array as plain data, for snapshots. Enable and Function
// Mask live in configuration space and come back with it.
struct MsixEntryState {
  uint32_t address_low = 0;
  uint32_t address_high = 0;
  uint32_t data = 0;
  uint32_t control = msix::kMaskBit;

  bool operator==(const MsixEntryState&) const = default;
};
struct MsixState {
  std::vector<MsixEntryState> table;
  std::vector<uint64_t> pba;

  bool operator==(const MsixState&) const = default;
};

enum class MsixNotify {
  kSent,       // the message went to the MsiSink
  kPending,    // masked: the pending bit is set
  kDisabled,   // MSI-X Enable is clear: nothing sent (the device may fall back to INTx)
  kBadVector,  // no such vector (kNoVector included): nothing sent
};

class Msix {
 public:
  // Where the table or the PBA sits: a BAR index and a QWORD-aligned offset in it.
  struct Location {
    int bar = 0;
    uint32_t offset = 0;
  };

  // `vectors` in 1..2048. The capability is appended to `config`'s list; the table and
  // PBA must lie inside their BARs, which `config` must already declare, and must not
  // overlap. `sink` must outlive the model.
  static Result<std::unique_ptr<Msix>> Create(ConfigSpace& config, uint16_t vectors, Location table,
                                              Location pba, MsiSink& sink);

  uint16_t vectors() const { return static_cast<uint16_t>(entries_.size()); }
  uint8_t capability_offset() const { return capability_; }
  uint64_t table_size() const { return entries_.size() * msix::kEntrySize; }
  uint64_t pba_size() const { return pba_.size() * 8; }

  // After every configuration write: picks up Enable and Function Mask from Message
  // Control, and sends what became unmasked.
  void ConfigWritten(const ConfigSpace& config);

  // The device raises `vector`.
  MsixNotify Notify(uint16_t vector);

  // BAR accesses, `offset` relative to the table's or the PBA's start.
  void TableRead(uint64_t offset, std::span<uint8_t> data);
  void TableWrite(uint64_t offset, std::span<const uint8_t> data);
  void PbaRead(uint64_t offset, std::span<uint8_t> data);
  void PbaWrite(uint64_t offset, std::span<const uint8_t> data);  // read-only: ignored, counted

  bool enabled() const;
  bool function_masked() const;
  bool vector_masked(uint16_t vector) const;
  bool pending(uint16_t vector) const;
  uint64_t bad_accesses() const { return bad_accesses_.load(std::memory_order_relaxed); }

  // ---- Snapshot. ----
  MsixState state() const;
  // Refuses a table or PBA of another size and pending bits beyond the last vector; then
  // picks up Enable and Function Mask from `config` as ConfigWritten does (sending nothing:
  // the guest's view of pending messages is restored, not replayed).
  Status Restore(const MsixState& state, const ConfigSpace& config);

 private:
  struct Entry {
    uint32_t address_low = 0;
    uint32_t address_high = 0;
    uint32_t data = 0;
    uint32_t control = msix::kMaskBit;  // §6.8.2.9: masked after reset
  };

  Msix(uint16_t vectors, uint8_t capability, MsiSink& sink);
  bool MaskedLocked(uint16_t vector) const;
  void SendLocked(uint16_t vector);
  void SendPendingLocked();
  uint32_t TableDwordLocked(uint64_t index) const;
  void SetTableDwordLocked(uint64_t index, uint32_t value);

  uint8_t capability_;
  MsiSink& sink_;
  mutable std::mutex mutex_;
  std::vector<Entry> entries_;    // guarded by mutex_
  std::vector<uint64_t> pba_;     // guarded by mutex_
  bool enabled_ = false;          // guarded by mutex_
  bool function_masked_ = false;  // guarded by mutex_
  std::atomic<uint64_t> bad_accesses_{0};
};

}  // namespace vireo::pci
