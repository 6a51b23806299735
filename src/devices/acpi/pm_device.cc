#include "devices/acpi/pm_device.h"

#include <array>

#include "arch/x86/acpi/acpi.h"

namespace vireo {
namespace {

constexpr uint64_t kRegisters = AcpiPmDevice::kSize / 2;

// Which bytes of each 16-bit register one access touched, and their values: an access
// may cover part of a register (a byte write to the SLP_TYP half of PM1_CNT) or several
// (a dword write across PM1_STS and PM1_EN). Each register then acts on its own lanes.
struct LaneWrite {
  uint16_t value = 0;
  uint16_t mask = 0;
};

}  // namespace

uint16_t AcpiPmDevice::RegisterValueLocked(uint64_t reg) const {
  switch (reg) {
    case kPm1Sts / 2:
      return state_.pm1_sts;
    case kPm1En / 2:
      return state_.pm1_en;
    default:
      // SCI_EN is hard-wired on; SLP_EN and GBL_RLS are write-only and read as 0.
      return static_cast<uint16_t>(state_.pm1_cnt | kSciEn);
  }
}

void AcpiPmDevice::Read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mutex_);
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t byte = offset + i;
    if (byte >= kSize) {
      data[i] = 0xff;  // open bus, as an unclaimed port reads
      out_of_range_accesses_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    data[i] = static_cast<uint8_t>(RegisterValueLocked(byte / 2) >> (8 * (byte % 2)));
  }
}

void AcpiPmDevice::Write(uint64_t offset, std::span<const uint8_t> data) {
  std::array<LaneWrite, kRegisters> lanes{};
  for (size_t i = 0; i < data.size(); ++i) {
    const uint64_t byte = offset + i;
    if (byte >= kSize) {
      out_of_range_accesses_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const int shift = 8 * static_cast<int>(byte % 2);
    lanes[byte / 2].value |= static_cast<uint16_t>(data[i] << shift);
    lanes[byte / 2].mask |= static_cast<uint16_t>(0xff << shift);
  }

  bool power_off = false;
  {
    std::lock_guard lock(mutex_);
    // PM1_STS: writing 1 clears a status bit, writing 0 leaves it (§4.8.3.1.1).
    const LaneWrite& sts = lanes[kPm1Sts / 2];
    state_.pm1_sts &= static_cast<uint16_t>(~(sts.value & sts.mask));

    // PM1_EN: plain read/write of the defined enable bits.
    const LaneWrite& en = lanes[kPm1En / 2];
    state_.pm1_en =
        static_cast<uint16_t>((state_.pm1_en & ~en.mask) | (en.value & en.mask & kEnBits));

    // PM1_CNT: keep SLP_TYPx and BM_RLD; act on SLP_EN (§4.8.3.2.1, §16.1.6: the OS
    // writes SLP_TYPx, then SLP_TYPx | SLP_EN).
    UpdateSciLocked();

    const LaneWrite& cnt = lanes[kPm1Cnt / 2];
    if (cnt.mask != 0) {
      const uint16_t merged =
          static_cast<uint16_t>((state_.pm1_cnt & ~cnt.mask) | (cnt.value & cnt.mask));
      state_.pm1_cnt = merged & kCntStoredBits;
      if ((cnt.mask & kSlpEn) && (cnt.value & kSlpEn)) {
        const uint16_t sleep_type = (merged & kSlpTyp) >> kSlpTypShift;
        if (sleep_type == x86::acpi::kS5SleepType) {
          power_off = true;
        } else {
          // S1-S4 are not in the DSDT; a guest asking anyway keeps running.
          ignored_sleep_requests_.fetch_add(1, std::memory_order_relaxed);
        }
      }
    }
  }
  // Outside the lock: the VMM's stop path may read device state.
  if (power_off) vm_.RequestStop(StopKind::kPowerOff, 0);
}

void AcpiPmDevice::RaiseStatus(uint16_t bits) {
  std::lock_guard lock(mutex_);
  state_.pm1_sts |= static_cast<uint16_t>(bits & kStsBits);
  UpdateSciLocked();
}

bool AcpiPmDevice::sci_asserted() const {
  std::lock_guard lock(mutex_);
  return sci_asserted_;
}

void AcpiPmDevice::UpdateSciLocked() {
  // Status and enable bits share positions (§4.8.3.1.1/2); PCIEXP_WAKE_DIS is a disable, not
  // an enable, and wakes only from sleep, so it never raises the SCI.
  constexpr uint16_t kSciEvents = kTmrEn | kGblEn | kPwrbtnEn | kSlpbtnEn | kRtcEn;
  const bool level = (state_.pm1_sts & state_.pm1_en & kSciEvents) != 0;
  if (level == sci_asserted_) return;
  sci_asserted_ = level;
  if (sci_) sci_->SetLevel(level);
}

AcpiPmState AcpiPmDevice::state() const {
  std::lock_guard lock(mutex_);
  return state_;
}

Status AcpiPmDevice::RestoreState(const AcpiPmState& state) {
  if ((state.pm1_sts & ~kStsBits) || (state.pm1_en & ~kEnBits) ||
      (state.pm1_cnt & ~kCntStoredBits)) {
    return Fail("ACPI PM state has undefined bits set (sts {:#x}, en {:#x}, cnt {:#x})",
                state.pm1_sts, state.pm1_en, state.pm1_cnt);
  }
  std::lock_guard lock(mutex_);
  state_ = state;
  UpdateSciLocked();
  return {};
}

}  // namespace vireo
