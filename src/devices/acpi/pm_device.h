// AcpiPmDevice: the fixed-hardware PM1a register blocks of an ACPI PC (ACPI 6.4
// §4.8.3.1 PM1 Event Grouping, §4.8.3.2 PM1 Control Grouping), as the FADT written by
// arch/x86/acpi describes them:
//
//   offset 0  PM1a_STS  16 bits, write-1-to-clear status
//   offset 2  PM1a_EN   16 bits, enables
//   offset 4  PM1a_CNT  16 bits, SCI_EN (always 1), SLP_TYPx, SLP_EN
//
// Writing SLP_EN with SLP_TYPx == \_S5's value powers the VM off; other sleep types
// (S1-S4, which the DSDT does not offer) are counted and ignored. There is no SMM, so
// ACPI mode is permanent and SCI_EN is hard-wired to 1 (§4.8.3.2: "ACPI-only
// platforms" set it and the OS never has to). The SCI (FADT SCI_INT, level, active high)
// is asserted while any enabled event has its status bit set (§4.8.3.1: an event raises
// the SCI when both its _STS and _EN bits are set); the power button (PWRBTN_STS, §4.8.2.2.1)
// is the only event source the VMM drives, through PressPowerButton.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>

#include "base/result.h"
#include "devices/bus_device.h"
#include "devices/interrupt_line.h"
#include "devices/vm_control.h"

namespace vireo {

// The device's guest-visible state, for snapshots (rule 4).
struct AcpiPmState {
  uint16_t pm1_sts = 0;
  uint16_t pm1_en = 0;
  uint16_t pm1_cnt = 0;  // SLP_TYPx and BM_RLD as last written; SCI_EN is implied
};

class AcpiPmDevice final : public BusDevice {
 public:
  static constexpr uint64_t kSize = 6;  // PM1a_EVT_BLK (4) + PM1a_CNT_BLK (2)

  // Register offsets within the block.
  static constexpr uint64_t kPm1Sts = 0;
  static constexpr uint64_t kPm1En = 2;
  static constexpr uint64_t kPm1Cnt = 4;

  // PM1 Status bits (§4.8.3.1.1).
  static constexpr uint16_t kTmrSts = 1 << 0;
  static constexpr uint16_t kBmSts = 1 << 4;
  static constexpr uint16_t kGblSts = 1 << 5;
  static constexpr uint16_t kPwrbtnSts = 1 << 8;
  static constexpr uint16_t kSlpbtnSts = 1 << 9;
  static constexpr uint16_t kRtcSts = 1 << 10;
  static constexpr uint16_t kPciexpWakeSts = 1 << 14;
  static constexpr uint16_t kWakSts = 1 << 15;
  static constexpr uint16_t kStsBits =
      kTmrSts | kBmSts | kGblSts | kPwrbtnSts | kSlpbtnSts | kRtcSts | kPciexpWakeSts | kWakSts;

  // PM1 Enable bits (§4.8.3.1.2).
  static constexpr uint16_t kTmrEn = 1 << 0;
  static constexpr uint16_t kGblEn = 1 << 5;
  static constexpr uint16_t kPwrbtnEn = 1 << 8;
  static constexpr uint16_t kSlpbtnEn = 1 << 9;
  static constexpr uint16_t kRtcEn = 1 << 10;
  static constexpr uint16_t kPciexpWakeDis = 1 << 14;
  static constexpr uint16_t kEnBits =
      kTmrEn | kGblEn | kPwrbtnEn | kSlpbtnEn | kRtcEn | kPciexpWakeDis;

  // PM1 Control bits (§4.8.3.2.1).
  static constexpr uint16_t kSciEn = 1 << 0;
  static constexpr uint16_t kBmRld = 1 << 1;
  static constexpr uint16_t kGblRls = 1 << 2;  // write-only: signals a BIOS that is absent
  static constexpr int kSlpTypShift = 10;
  static constexpr uint16_t kSlpTyp = 0b111 << kSlpTypShift;
  static constexpr uint16_t kSlpEn = 1 << 13;  // write-only: reads as 0
  static constexpr uint16_t kCntStoredBits = kBmRld | kSlpTyp;

  // `vm` must outlive the device; the VM owns both. `sci` (may be null) is the SCI line.
  explicit AcpiPmDevice(VmControl& vm, std::shared_ptr<InterruptLine> sci = nullptr)
      : vm_(vm), sci_(std::move(sci)) {}

  std::string_view name() const override { return "acpi-pm"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // The platform side: hardware events set status bits (e.g. an RTC alarm, RTC_STS).
  void RaiseStatus(uint16_t bits);
  // A press of the fixed-hardware power button: PWRBTN_STS, and the SCI if PWRBTN_EN is set.
  // An OS that handles it runs its shutdown and writes S5 itself.
  void PressPowerButton() { RaiseStatus(kPwrbtnSts); }
  bool sci_asserted() const;

  // SLP_EN writes with a sleep type other than S5.
  uint64_t ignored_sleep_requests() const {
    return ignored_sleep_requests_.load(std::memory_order_relaxed);
  }
  // Accesses that fell outside the 6-byte block (a bus bug or a guest probing).
  uint64_t out_of_range_accesses() const {
    return out_of_range_accesses_.load(std::memory_order_relaxed);
  }

  AcpiPmState state() const;
  // Refuses values with bits the hardware cannot hold.
  Status RestoreState(const AcpiPmState& state);

 private:
  uint16_t RegisterValueLocked(uint64_t reg) const;
  // Drives the SCI from (PM1_STS & PM1_EN), changing the line only on an edge.
  void UpdateSciLocked();

  VmControl& vm_;
  mutable std::mutex mutex_;
  std::shared_ptr<InterruptLine> sci_;
  AcpiPmState state_;          // guarded by mutex_
  bool sci_asserted_ = false;  // guarded by mutex_
  std::atomic<uint64_t> ignored_sleep_requests_{0};
  std::atomic<uint64_t> out_of_range_accesses_{0};
};

}  // namespace vireo
