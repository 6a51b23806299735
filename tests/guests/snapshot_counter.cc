// snapshot_counter: a guest for the snapshot tests (tests/integration/snapshot_test.py). Each
// round, at CPL3 (native speed where CPL0 is emulated), it
//   1. checks that a 16 MiB buffer at 32 MiB still hashes to what the previous round left
//      (so memory restored from a snapshot must be exactly the memory that was saved),
//   2. writes to 64 pages of it chosen from the round number (dirtying memory for diffs),
//   3. hashes the whole buffer again,
// then prints "count N verified V sum S" (V = the hash checked in step 1, S = the new one)
// and waits about 20 ms on the TSC. A restored guest therefore continues with count N+1 and
// verified = the last sum printed before the snapshot.
// Exit: debug-exit 2 (status 5) if the buffer's hash does not match (memory lost or
// corrupted), 3 (status 7) after kMaxCount rounds, so a forgotten VM ends.
#include "runtime.h"

namespace {

constexpr uint64_t kMaxCount = 30000;
constexpr uint64_t kBufferBase = 32ull << 20;
constexpr uint64_t kBufferSize = 16ull << 20;
constexpr uint64_t kPages = kBufferSize / 4096;
constexpr uint64_t kDirtyPerRound = 64;

struct Round {
  uint64_t n;
  uint64_t expected;  // the hash the previous round left
  uint64_t verified;  // out: the hash found before writing
  uint64_t sum;       // out: the hash after writing
  uint64_t ticks;     // the wait after the round
};

uint64_t Hash() {
  const auto* words = reinterpret_cast<const volatile uint64_t*>(kBufferBase);
  uint64_t h = 0xcbf29ce484222325ull;
  for (uint64_t i = 0; i < kBufferSize / 8; ++i) h = (h ^ words[i]) * 0x100000001b3ull;
  return h;
}

// Runs at CPL3.
uint64_t DoRound(uint64_t arg) {
  auto* r = reinterpret_cast<Round*>(arg);
  r->verified = Hash();
  if (r->verified != r->expected) return 1;
  auto* words = reinterpret_cast<volatile uint64_t*>(kBufferBase);
  uint64_t x = r->n * 0x9e3779b97f4a7c15ull + 1;
  for (uint64_t i = 0; i < kDirtyPerRound; ++i) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;  // xorshift: a spread of pages per round
    const uint64_t page = x % kPages;
    words[page * 512 + (x >> 40) % 512] = x + r->n;
  }
  r->sum = Hash();
  const uint64_t deadline = rt::Rdtsc() + r->ticks;
  while (rt::Rdtsc() < deadline) {
  }
  return 0;
}

Round round;  // in the image, so the user-mode code can reach it

}  // namespace

int GuestMain(const rt::BootInfo&) {
  round.ticks = 20 * rt::TscPerMs();
  round.expected = Hash();  // all zero at boot
  rt::Printf("snapshot_counter: buffer %#lx+%#lx\n", kBufferBase, kBufferSize);
  for (uint64_t n = 0; n < kMaxCount; ++n) {
    round.n = n;
    if (rt::RunAtCpl3(DoRound, reinterpret_cast<uint64_t>(&round)) != 0) {
      rt::Printf("MISMATCH count %lu expected %#lx found %#lx\n", n, round.expected,
                 round.verified);
      rt::Fail("snapshot_counter", 2, "memory hash changed between rounds");
    }
    rt::Printf("count %lu verified %#lx sum %#lx\n", n, round.verified, round.sum);
    round.expected = round.sum;
  }
  rt::Fail("snapshot_counter", 3, "count ran out");
}
