// bench_migrate: the guest of bench/migration.sh (docs/performance.md, "Live migration"), booted
// the same way by Vireo and by QEMU, idle or dirtying memory at a fixed rate.
//
// Cmdline: mig.dirty_mib_s=R (default 0: idle), mig.buffer_mib=B (default 64). Every 20 ms it
// prints "count N lap L late K"; with R > 0, each 20 ms round first writes one word into each of
// the next R * 4096 / 50 pages (R MiB/s of pages) of a B MiB buffer at 32 MiB, cycling through
// it, so the dirty rate is steady and the same under any VMM. All of that, and the wait, runs at
// CPL3 (native speed where CPL0 is emulated); only the print runs at CPL0.
//
// The round period comes from the CMOS RTC (one second between two ticks of its seconds
// register, measured in TSC ticks at boot), not from rt::TscPerMs: that uses PIT channel 2
// gated through port 0x61, which QEMU's microvm lacks, so the guest would spin for a different
// time under each VMM. K counts rounds that overran their 20 ms (the guest could not keep up).
//
// Each page's word holds what the previous lap wrote there; a round checks it before writing,
// so memory migrated wrongly shows up as "MISMATCH page P" and debug-exit 2 (status 5).
// Other exits: 3 (status 7) after kMaxCount rounds, so a forgotten VM ends; 4 (status 9) the
// buffer does not fit in RAM.
#include "runtime.h"

namespace {

constexpr const char* kName = "bench_migrate";
constexpr uint64_t kMaxCount = 30000;  // ~10 minutes
constexpr uint64_t kBufferBase = 32ull << 20;
constexpr uint64_t kRoundsPerSecond = 50;
constexpr uint64_t kWordsPerPage = 4096 / 8;

struct Round {
  uint64_t pages;      // buffer size in pages
  uint64_t per_round;  // pages written per round
  uint64_t cursor;     // next page to write
  uint64_t lap;        // how many times the cursor has wrapped
  uint64_t deadline;   // TSC at which this round's wait ends
  uint64_t ticks;      // TSC ticks per round
  uint64_t late;       // rounds that overran
  uint64_t bad_page;   // out: the page whose word was wrong
};

// What lap `lap` leaves in page `page` (0 before the first lap, as fresh memory is).
uint64_t Stamp(uint64_t page, uint64_t lap) {
  return lap == 0 ? 0 : (lap << 40) ^ (page * 0x9e3779b97f4a7c15ull) ^ 1;
}

// Runs at CPL3. Returns 1 on a mismatch.
uint64_t DoRound(uint64_t arg) {
  auto* r = reinterpret_cast<Round*>(arg);
  auto* words = reinterpret_cast<volatile uint64_t*>(kBufferBase);
  for (uint64_t i = 0; i < r->per_round; ++i) {
    volatile uint64_t& w = words[r->cursor * kWordsPerPage + r->cursor % kWordsPerPage];
    if (w != Stamp(r->cursor, r->lap)) {
      r->bad_page = r->cursor;
      return 1;
    }
    w = Stamp(r->cursor, r->lap + 1);
    if (++r->cursor == r->pages) r->cursor = 0, ++r->lap;
  }
  r->deadline += r->ticks;
  uint64_t now = rt::Rdtsc();
  if (now >= r->deadline) {
    ++r->late;
    r->deadline = now;  // start afresh rather than catch up in a burst
  }
  while (rt::Rdtsc() < r->deadline) {
  }
  return 0;
}

// One second of TSC ticks between two changes of the RTC's seconds register; 0 if the RTC does
// not tick within 3e10 TSC ticks (3 s at 10 GHz; rt::TscPerMs cannot bound it, see above).
uint64_t TscPerSecondFromRtc() {
  const uint64_t give_up = rt::Rdtsc() + 30'000'000'000ull;
  auto next_tick = [&]() -> bool {
    const uint8_t s = rt::CmosRead(0x00);
    while (rt::CmosRead(0x00) == s) {
      if (rt::Rdtsc() > give_up) return false;
    }
    return true;
  };
  if (!next_tick()) return 0;
  const uint64_t start = rt::Rdtsc();
  if (!next_tick()) return 0;
  return rt::Rdtsc() - start;
}

Round round;  // in the image, so the user-mode code can reach it

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  const uint64_t rate = rt::CmdlineNumber(info, "mig.dirty_mib_s", 0);
  const uint64_t buffer_mib = rt::CmdlineNumber(info, "mig.buffer_mib", 64);
  uint64_t ram_end = 0;
  for (int i = 0; i < info.memory_count; ++i) {
    const rt::MemoryRange& m = info.memory[i];
    if (m.type == 1 && m.addr <= kBufferBase && m.addr + m.size > ram_end)
      ram_end = m.addr + m.size;
  }
  if (rate > 0 && kBufferBase + (buffer_mib << 20) > ram_end) {
    rt::Fail(kName, 4, "the buffer does not fit in the RAM below the first hole");
  }

  uint64_t per_second = TscPerSecondFromRtc();
  const char* clock = "rtc";
  if (per_second == 0) {
    per_second = rt::TscPerMs() * 1000;
    clock = "pit";
  }
  round.ticks = per_second / kRoundsPerSecond;
  round.pages = buffer_mib * 256;
  round.per_round = rate * 256 / kRoundsPerSecond;
  if (round.per_round > round.pages) round.per_round = round.pages;
  rt::Printf("bench_migrate: %lu MiB/s of pages dirtied in %lu MiB at %#lx; tsc %lu kHz (%s)\n",
             rate, buffer_mib, kBufferBase, per_second / 1000, clock);
  round.deadline = rt::Rdtsc();
  for (uint64_t n = 0; n < kMaxCount; ++n) {
    if (rt::RunAtCpl3(DoRound, reinterpret_cast<uint64_t>(&round)) != 0) {
      rt::Printf("MISMATCH page %lu lap %lu\n", round.bad_page, round.lap);
      rt::Fail(kName, 2, "a page lost what the previous lap wrote");
    }
    rt::Printf("count %lu lap %lu late %lu\n", n, round.lap, round.late);
  }
  rt::Fail(kName, 3, "count ran out");
}
