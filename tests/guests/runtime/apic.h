// Local APIC in xAPIC mode (MMIO at 0xfee00000). Register offsets from SDM Vol. 3A table 10-1.
#pragma once

#include <stdint.h>

namespace rt {

inline constexpr uint64_t kLapicDefaultBase = 0xfee00000;

inline constexpr uint32_t kLapicId = 0x020;
inline constexpr uint32_t kLapicVersion = 0x030;
inline constexpr uint32_t kLapicEoi = 0x0b0;
inline constexpr uint32_t kLapicSvr = 0x0f0;
inline constexpr uint32_t kLapicEsr = 0x280;
inline constexpr uint32_t kLapicIcrLow = 0x300;
inline constexpr uint32_t kLapicIcrHigh = 0x310;
inline constexpr uint32_t kLapicLvtTimer = 0x320;
inline constexpr uint32_t kLapicLvtLint0 = 0x350;
inline constexpr uint32_t kLapicLvtLint1 = 0x360;
inline constexpr uint32_t kLapicTimerInitial = 0x380;
inline constexpr uint32_t kLapicTimerCurrent = 0x390;
inline constexpr uint32_t kLapicTimerDivide = 0x3e0;

// In x2APIC mode (after LapicEnableX2Apic) these go through MSR 0x800 + (reg >> 4).
uint32_t LapicRead(uint32_t reg);
void LapicWrite(uint32_t reg, uint32_t v);

// Switches an enabled xAPIC to x2APIC mode (IA32_APIC_BASE.EXTD, SDM 10.12.5); the register
// accessors and LapicEoi follow. The caller checks CPUID.1:ECX bit 21 first.
void LapicEnableX2Apic();
bool LapicX2Apic();

// Software-enables the LAPIC (SVR bit 8) with the spurious vector 0xff.
void LapicEnable();
uint32_t LapicId();
void LapicEoi();

// Sends INIT, then two STARTUPs with vector `page` (SDM 8.4.4.1), waiting 10 ms and 200 us.
// Returns false if the ICR never reported the IPIs as sent.
bool LapicStartAp(uint32_t apic_id, uint8_t page);

// Timer: divide by 16; periodic or one-shot with `count` bus-clock/16 ticks at `vector`.
void LapicTimerStart(uint8_t vector, uint32_t count, bool periodic);
void LapicTimerStop();

}  // namespace rt
