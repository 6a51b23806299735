#include "apic.h"

#include "io.h"
#include "tsc.h"

namespace rt {

namespace {
constexpr uint32_t kIcrDeliveryPending = 1 << 12;
constexpr uint32_t kIcrLevelAssert = 1 << 14;
constexpr uint32_t kIcrTriggerLevel = 1 << 15;
constexpr uint32_t kIcrInit = 5 << 8;
constexpr uint32_t kIcrStartup = 6 << 8;
constexpr uint32_t kLvtMasked = 1 << 16;
constexpr uint32_t kLvtPeriodic = 1 << 17;

bool SendIpi(uint32_t apic_id, uint32_t low) {
  LapicWrite(kLapicIcrHigh, apic_id << 24);
  LapicWrite(kLapicIcrLow, low);
  for (int i = 0; i < 100000; ++i) {
    if (!(LapicRead(kLapicIcrLow) & kIcrDeliveryPending)) return true;
    Pause();
  }
  return false;
}
}  // namespace

namespace {
// Set once by LapicEnableX2Apic on the CPU that switched (the guests that use it are UP).
volatile bool x2apic_mode;
constexpr uint32_t kMsrApicBase = 0x1b;
constexpr uint32_t kX2ApicMsrBase = 0x800;
}  // namespace

uint32_t LapicRead(uint32_t reg) {
  if (x2apic_mode) return static_cast<uint32_t>(Rdmsr(kX2ApicMsrBase + (reg >> 4)));
  return MmioRead<uint32_t>(kLapicDefaultBase + reg);
}
void LapicWrite(uint32_t reg, uint32_t v) {
  if (x2apic_mode) {
    Wrmsr(kX2ApicMsrBase + (reg >> 4), v);
    return;
  }
  MmioWrite<uint32_t>(kLapicDefaultBase + reg, v);
}

void LapicEnableX2Apic() {
  Wrmsr(kMsrApicBase, Rdmsr(kMsrApicBase) | (1u << 10));
  x2apic_mode = true;
}
bool LapicX2Apic() { return x2apic_mode; }

void LapicEnable() { LapicWrite(kLapicSvr, 0x100 | 0xff); }
uint32_t LapicId() { return x2apic_mode ? LapicRead(kLapicId) : LapicRead(kLapicId) >> 24; }
void LapicEoi() { LapicWrite(kLapicEoi, 0); }

bool LapicStartAp(uint32_t apic_id, uint8_t page) {
  LapicWrite(kLapicEsr, 0);
  bool ok = SendIpi(apic_id, kIcrInit | kIcrLevelAssert | kIcrTriggerLevel);
  ok = SendIpi(apic_id, kIcrInit | kIcrTriggerLevel) && ok;  // INIT de-assert
  DelayUs(10000);
  for (int i = 0; i < 2; ++i) {
    ok = SendIpi(apic_id, kIcrStartup | page) && ok;
    DelayUs(200);
  }
  return ok;
}

void LapicTimerStart(uint8_t vector, uint32_t count, bool periodic) {
  LapicWrite(kLapicTimerDivide, 0x3);  // divide by 16
  LapicWrite(kLapicLvtTimer, vector | (periodic ? kLvtPeriodic : 0));
  LapicWrite(kLapicTimerInitial, count);
}

void LapicTimerStop() {
  LapicWrite(kLapicLvtTimer, kLvtMasked);
  LapicWrite(kLapicTimerInitial, 0);
}

}  // namespace rt
