// MC146818A real-time clock and its 128 bytes of CMOS RAM, as on a PC: index port 0x70
// (bit 7 = NMI disable), data port 0x71. Registered as one device at 0x70, size 2.
//
// Follows the Motorola MC146818A datasheet; section names below ("Register B", "Update
// Cycle", "Time, Calendar and Alarm Data Modes") are its headings. The PC-specific bytes
// (century at 0x32, memory sizes) follow QEMU's pc_cmos_init (hw/i386/pc.c).
//
// Time: registers 0x00-0x09 and 0x32 are computed on read from an injected clock plus an
// offset, in the format Register B selects (DM: binary or BCD; 24/12: 24-hour or 12-hour
// with bit 7 = PM). A guest that writes a time register (with SET clear), or that sets SET,
// writes the registers and clears SET, moves the offset, so the guest sets its own clock
// without touching the host's.
//
// UIP: the clock is read in nanoseconds so that UIP (Register A bit 7) reads 1 exactly
// during the last 244 us before each second boundary of the time the registers show, as
// the Update Cycle section describes; with SET set UIP reads 0.
//
// Not modelled: IRQ 8 (periodic, alarm and update-ended interrupts are never raised;
// PIE/AIE/UIE are stored only, Register C's IRQF stays 0), the alarm comparison (AF), the
// periodic flag (PF), the square-wave output, Register A's divider control (DV is stored
// but the clock always runs) and daylight-saving adjustment (DSE). UF is set in Register
// C when at least one update cycle has completed since Register C was last read, so a
// guest polling UF sees one per second.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <mutex>
#include <span>
#include <string_view>

#include "base/result.h"

#include "devices/bus_device.h"

namespace vireo {

// The chip's state for snapshots (rule 4): the 128 bytes of RAM, the index latch and how far
// the guest's clock runs from the host's; the time registers are computed from the clock.
struct CmosRtcState {
  std::array<uint8_t, 128> cmos{};
  uint8_t index = 0;
  bool nmi_disabled = false;
  int64_t offset_seconds = 0;
};

class CmosRtc : public BusDevice {
 public:
  static constexpr uint64_t kBase = 0x70;
  static constexpr uint64_t kSize = 2;
  static constexpr size_t kRamSize = 128;

  // Returns the host's time as UNIX nanoseconds (UTC). Default: the host realtime clock.
  using Clock = std::function<int64_t()>;

  // `low_ram_end`: bytes of RAM below 4 GiB (RAM runs from 0 to the 32-bit hole);
  // `high_ram`: bytes of RAM at and above 4 GiB.
  CmosRtc(uint64_t low_ram_end, uint64_t high_ram, Clock clock = nullptr);

  std::string_view name() const override { return "cmos-rtc"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // What a platform reset does to the chip (datasheet, RESET pin): clears PIE, AIE, UIE
  // and SQWE in Register B and the flags in Register C. The time, its offset, the data
  // format and the RAM are kept, as on a PC; the memory-size bytes are written again.
  void Reset();

  bool nmi_disabled() const;
  // Seconds the guest's clock runs ahead of the host's (negative: behind).
  int64_t offset_seconds() const;
  // Guest writes that left the time registers invalid (e.g. month 13): ignored, counted.
  uint64_t invalid_time_writes() const;

  CmosRtcState state() const;
  // Refuses an index outside the 128-byte RAM.
  Status RestoreState(const CmosRtcState& state);

 private:
  // Register addresses (datasheet "Address Map").
  enum Reg : uint8_t {
    kSeconds = 0x00,
    kSecondsAlarm = 0x01,
    kMinutes = 0x02,
    kMinutesAlarm = 0x03,
    kHours = 0x04,
    kHoursAlarm = 0x05,
    kDayOfWeek = 0x06,
    kDayOfMonth = 0x07,
    kMonth = 0x08,
    kYear = 0x09,
    kRegA = 0x0a,
    kRegB = 0x0b,
    kRegC = 0x0c,
    kRegD = 0x0d,
    kCentury = 0x32,  // PC convention (ACPI FADT CENTURY field points here)
  };

  uint8_t ReadData();
  void WriteData(uint8_t value);
  static bool IsTimeRegister(uint8_t index);
  int64_t GuestNanos() const;
  // Encodes the guest time for `guest_seconds` into cmos_'s time registers.
  void StoreTime(int64_t guest_seconds);
  // Decodes cmos_'s time registers and moves the offset to match; false if invalid.
  bool LoadTime();
  void SetMemorySizes();

  const Clock clock_;
  const uint64_t low_ram_end_;
  const uint64_t high_ram_;

  mutable std::mutex mu_;
  // Guarded by mu_. While SET is clear, the time bytes in cmos_ are scratch; the values a
  // guest reads are computed from the clock.
  std::array<uint8_t, kRamSize> cmos_{};
  uint8_t index_ = 0;
  bool nmi_disabled_ = false;
  int64_t offset_seconds_ = 0;
  int64_t last_update_second_ = 0;  // guest second when Register C was last read
  uint64_t invalid_time_writes_ = 0;
};

}  // namespace vireo
