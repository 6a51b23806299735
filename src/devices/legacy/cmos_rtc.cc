#include "devices/legacy/cmos_rtc.h"

#include <algorithm>
#include <chrono>
#include <utility>

namespace vireo {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;
// Update Cycle: UIP rises 244 us before the update starts.
constexpr int64_t kUipWindowNanos = 244'000;

// Register A.
constexpr uint8_t kRegAUip = 0x80;
constexpr uint8_t kRegAReset = 0x26;  // DV = 010 (32.768 kHz time base), RS = 0110 (1024 Hz)
// Register B.
constexpr uint8_t kRegBSet = 0x80;
constexpr uint8_t kRegBPie = 0x40;
constexpr uint8_t kRegBAie = 0x20;
constexpr uint8_t kRegBUie = 0x10;
constexpr uint8_t kRegBSqwe = 0x08;
constexpr uint8_t kRegBDm = 0x04;            // 1 = binary, 0 = BCD
constexpr uint8_t kRegB24Hour = 0x02;        // 1 = 24-hour, 0 = 12-hour
constexpr uint8_t kRegBReset = kRegB24Hour;  // BCD, 24-hour, as a PC BIOS leaves it
// Register C.
constexpr uint8_t kRegCUf = 0x10;
// Register D.
constexpr uint8_t kRegDVrt = 0x80;  // valid RAM and time: the battery is never flat

constexpr uint8_t kIndexNmiDisable = 0x80;
constexpr uint8_t kHourPm = 0x80;  // 12-hour mode

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

int64_t HostRealtimeNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// Time, Calendar and Alarm Data Modes: BCD or binary per Register B DM.
uint8_t Encode(int value, bool binary) {
  return binary ? static_cast<uint8_t>(value)
                : static_cast<uint8_t>((value / 10) << 4 | value % 10);
}

// Returns -1 for a byte that is not a valid BCD number.
int Decode(uint8_t value, bool binary) {
  if (binary) return value;
  if ((value & 0x0f) > 9 || (value >> 4) > 9) return -1;
  return (value >> 4) * 10 + (value & 0x0f);
}

}  // namespace

CmosRtc::CmosRtc(uint64_t low_ram_end, uint64_t high_ram, Clock clock)
    : clock_(clock ? std::move(clock) : Clock(HostRealtimeNanos)),
      low_ram_end_(low_ram_end),
      high_ram_(high_ram) {
  cmos_[kRegA] = kRegAReset;
  cmos_[kRegB] = kRegBReset;
  cmos_[kRegD] = kRegDVrt;
  SetMemorySizes();
  last_update_second_ = FloorDiv(GuestNanos(), kNanosPerSecond);
}

void CmosRtc::Reset() {
  std::lock_guard lock(mu_);
  cmos_[kRegB] &= ~(kRegBPie | kRegBAie | kRegBUie | kRegBSqwe);
  cmos_[kRegC] = 0;
  index_ = 0;
  nmi_disabled_ = false;
  SetMemorySizes();
}

// Memory sizes, as QEMU's pc_cmos_init writes them for SeaBIOS and other firmware.
void CmosRtc::SetMemorySizes() {
  // 0x15/0x16: base memory in KiB (the first 640 KiB).
  const uint64_t base_kib = std::min<uint64_t>(low_ram_end_ / kKiB, 640);
  cmos_[0x15] = static_cast<uint8_t>(base_kib);
  cmos_[0x16] = static_cast<uint8_t>(base_kib >> 8);
  // 0x17/0x18 and 0x30/0x31: KiB of extended memory above 1 MiB, capped at 0xffff.
  const uint64_t ext_kib =
      std::min<uint64_t>(low_ram_end_ > kMiB ? (low_ram_end_ - kMiB) / kKiB : 0, 0xffff);
  cmos_[0x17] = cmos_[0x30] = static_cast<uint8_t>(ext_kib);
  cmos_[0x18] = cmos_[0x31] = static_cast<uint8_t>(ext_kib >> 8);
  // 0x34/0x35: RAM between 16 MiB and the 32-bit hole, in 64 KiB units.
  const uint64_t mid_64k = std::min<uint64_t>(
      low_ram_end_ > 16 * kMiB ? (low_ram_end_ - 16 * kMiB) / (64 * kKiB) : 0, 0xffff);
  cmos_[0x34] = static_cast<uint8_t>(mid_64k);
  cmos_[0x35] = static_cast<uint8_t>(mid_64k >> 8);
  // 0x5b-0x5d: RAM above 4 GiB, in 64 KiB units (24 bits: up to 1 TiB).
  const uint64_t high_64k = std::min<uint64_t>(high_ram_ / (64 * kKiB), 0xffffff);
  cmos_[0x5b] = static_cast<uint8_t>(high_64k);
  cmos_[0x5c] = static_cast<uint8_t>(high_64k >> 8);
  cmos_[0x5d] = static_cast<uint8_t>(high_64k >> 16);
}

void CmosRtc::Read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  // 8-bit ports: a wider access is a run of byte accesses. The index port is write-only.
  for (size_t i = 0; i < data.size(); ++i) data[i] = offset + i == 1 ? ReadData() : 0xff;
}

void CmosRtc::Write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  for (size_t i = 0; i < data.size() && offset + i < kSize; ++i) {
    if (offset + i == 0) {
      nmi_disabled_ = (data[i] & kIndexNmiDisable) != 0;
      index_ = data[i] & ~kIndexNmiDisable;
    } else {
      WriteData(data[i]);
    }
  }
}

bool CmosRtc::IsTimeRegister(uint8_t index) {
  switch (index) {
    case kSeconds:
    case kMinutes:
    case kHours:
    case kDayOfWeek:
    case kDayOfMonth:
    case kMonth:
    case kYear:
    case kCentury:
      return true;
    default:
      return false;
  }
}

int64_t CmosRtc::GuestNanos() const { return clock_() + offset_seconds_ * kNanosPerSecond; }

uint8_t CmosRtc::ReadData() {
  const bool set = (cmos_[kRegB] & kRegBSet) != 0;
  if (IsTimeRegister(index_)) {
    // Register B SET: updates are inhibited and the registers hold what was written.
    if (!set) StoreTime(FloorDiv(GuestNanos(), kNanosPerSecond));
    return cmos_[index_];
  }
  switch (index_) {
    case kRegA: {
      const int64_t now = GuestNanos();
      const int64_t phase = now - FloorDiv(now, kNanosPerSecond) * kNanosPerSecond;
      const bool uip = !set && phase >= kNanosPerSecond - kUipWindowNanos;
      return (cmos_[kRegA] & ~kRegAUip) | (uip ? kRegAUip : 0);
    }
    case kRegC: {
      // Register C: reading clears every flag.
      const int64_t second = FloorDiv(GuestNanos(), kNanosPerSecond);
      uint8_t value = cmos_[kRegC];
      if (!set && second != last_update_second_) value |= kRegCUf;
      last_update_second_ = second;
      cmos_[kRegC] = 0;
      return value;
    }
    case kRegD:
      return kRegDVrt;
    default:
      return cmos_[index_];
  }
}

void CmosRtc::WriteData(uint8_t value) {
  const bool set = (cmos_[kRegB] & kRegBSet) != 0;
  if (IsTimeRegister(index_)) {
    if (set) {
      cmos_[index_] = value;  // taken into account when SET is cleared
      return;
    }
    // A write with updates running changes one field of the running time.
    StoreTime(FloorDiv(GuestNanos(), kNanosPerSecond));
    cmos_[index_] = value;
    if (!LoadTime()) ++invalid_time_writes_;
    return;
  }
  switch (index_) {
    case kRegA:
      cmos_[kRegA] = value & ~kRegAUip;  // UIP is read-only
      return;
    case kRegB:
      if ((value & kRegBSet) && !set) {
        // Register B: setting SET freezes the registers at the current time (and clears UIE).
        StoreTime(FloorDiv(GuestNanos(), kNanosPerSecond));
        value &= ~kRegBUie;
      }
      cmos_[kRegB] = value;
      if (set && !(value & kRegBSet) && !LoadTime()) ++invalid_time_writes_;
      return;
    case kRegC:
    case kRegD:
      return;  // read-only
    default:
      cmos_[index_] = value;  // plain NVRAM
      return;
  }
}

void CmosRtc::StoreTime(int64_t guest_seconds) {
  using namespace std::chrono;
  const bool binary = (cmos_[kRegB] & kRegBDm) != 0;
  const bool hour24 = (cmos_[kRegB] & kRegB24Hour) != 0;
  const sys_days day = floor<days>(sys_seconds(seconds(guest_seconds)));
  const int64_t second_of_day = guest_seconds - day.time_since_epoch().count() * 86400;
  const year_month_day date(day);
  const int year = static_cast<int>(date.year());
  const int hour = static_cast<int>(second_of_day / 3600);

  cmos_[kSeconds] = Encode(static_cast<int>(second_of_day % 60), binary);
  cmos_[kMinutes] = Encode(static_cast<int>(second_of_day / 60 % 60), binary);
  if (hour24) {
    cmos_[kHours] = Encode(hour, binary);
  } else {
    const int hour12 = hour % 12 == 0 ? 12 : hour % 12;
    cmos_[kHours] = Encode(hour12, binary) | (hour >= 12 ? kHourPm : 0);
  }
  cmos_[kDayOfWeek] =
      Encode(static_cast<int>(weekday(day).c_encoding()) + 1, binary);  // 1 = Sunday
  cmos_[kDayOfMonth] = Encode(static_cast<int>(static_cast<unsigned>(date.day())), binary);
  cmos_[kMonth] = Encode(static_cast<int>(static_cast<unsigned>(date.month())), binary);
  cmos_[kYear] = Encode(((year % 100) + 100) % 100, binary);
  cmos_[kCentury] = Encode(std::clamp(year / 100, 0, 99), binary);
}

bool CmosRtc::LoadTime() {
  using namespace std::chrono;
  const bool binary = (cmos_[kRegB] & kRegBDm) != 0;
  const bool hour24 = (cmos_[kRegB] & kRegB24Hour) != 0;
  const int sec = Decode(cmos_[kSeconds], binary);
  const int min = Decode(cmos_[kMinutes], binary);
  int hour =
      Decode(hour24 ? cmos_[kHours] : static_cast<uint8_t>(cmos_[kHours] & ~kHourPm), binary);
  const int mday = Decode(cmos_[kDayOfMonth], binary);
  const int mon = Decode(cmos_[kMonth], binary);
  const int yy = Decode(cmos_[kYear], binary);
  const int cc = Decode(cmos_[kCentury], binary);
  if (!hour24) {
    if (hour < 1 || hour > 12) return false;
    hour = hour % 12 + ((cmos_[kHours] & kHourPm) ? 12 : 0);
  }
  if (sec < 0 || sec > 59 || min < 0 || min > 59 || hour < 0 || hour > 23 || yy < 0 || yy > 99 ||
      cc < 0 || cc > 99) {
    return false;
  }
  const year_month_day date{year(cc * 100 + yy), month(static_cast<unsigned>(mon)),
                            day(static_cast<unsigned>(mday))};
  if (mon < 1 || mday < 1 || !date.ok()) return false;
  const int64_t guest_seconds = sys_days(date).time_since_epoch().count() * 86400 +
                                int64_t{hour} * 3600 + int64_t{min} * 60 + sec;
  offset_seconds_ = guest_seconds - FloorDiv(clock_(), kNanosPerSecond);
  return true;
}

bool CmosRtc::nmi_disabled() const {
  std::lock_guard lock(mu_);
  return nmi_disabled_;
}

int64_t CmosRtc::offset_seconds() const {
  std::lock_guard lock(mu_);
  return offset_seconds_;
}

uint64_t CmosRtc::invalid_time_writes() const {
  std::lock_guard lock(mu_);
  return invalid_time_writes_;
}

CmosRtcState CmosRtc::state() const {
  std::lock_guard lock(mu_);
  return {cmos_, index_, nmi_disabled_, offset_seconds_};
}

Status CmosRtc::RestoreState(const CmosRtcState& s) {
  if (s.index >= kRamSize) return Fail("cmos-rtc: index {:#x} is outside its RAM", s.index);
  std::lock_guard lock(mu_);
  cmos_ = s.cmos;
  index_ = s.index;
  nmi_disabled_ = s.nmi_disabled;
  offset_seconds_ = s.offset_seconds;
  last_update_second_ = FloorDiv(GuestNanos(), kNanosPerSecond);
  return {};
}

}  // namespace vireo
