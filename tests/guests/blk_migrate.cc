// blk_migrate: a guest for block migration (tests/integration/block_migration_test.py). It sets
// up virtio-blk (interrupt-driven) once, then every round N:
//   1. reads back the 4 KiB block round N-1 wrote and checks its pattern (across a migration,
//      this reads on the destination what the source wrote last),
//   2. writes block (N * 37) % 4096 of its 16 MiB disk with a pattern keyed by N (so writes
//      wander over every 64 KiB chunk), and
// prints "blk N ok block B", then waits about 10 ms on the TSC. The test recomputes the
// patterns to predict the disk's contents.
// Exit: debug-exit 3 (status 7) no disk, 4 (9) init failed, 5 (11) a request failed or timed
// out, 6 (13) read-back mismatch, 8 (17) after kMaxRounds.
#include "runtime.h"
#include "virtio.h"

namespace {

using rt::virtio::Buffer;
using rt::virtio::Device;
using rt::virtio::Error;

constexpr const char* kName = "blk_migrate";
constexpr uint64_t kMaxRounds = 100000;
constexpr uint32_t kBlock = 4096;
constexpr uint64_t kBlocks = 4096;  // a 16 MiB disk
constexpr uint32_t kBlkTIn = 0;
constexpr uint32_t kBlkTOut = 1;

struct BlkReqHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

Device blk;
BlkReqHeader header;
volatile uint8_t status;
alignas(4096) uint8_t data[kBlock];

void Check(Error e, const char* what) {
  if (e == Error::kOk) return;
  rt::Printf("%s: %s (device status %#x)\n", what, rt::virtio::ErrorName(e), blk.Status());
  blk.PrintQueue(0);
  rt::Fail(kName, 5, "request did not complete");
}

uint8_t BlkRequest(uint32_t type, uint64_t block, bool device_writes) {
  header = {type, 0, block * (kBlock / 512)};
  status = 0xff;
  Buffer bufs[3] = {rt::virtio::Out(&header, sizeof(header)),
                    {reinterpret_cast<uint64_t>(data), kBlock, device_writes},
                    rt::virtio::In(const_cast<uint8_t*>(&status), 1)};
  Check(blk.Transfer(0, bufs, 3), "blk request");
  return status;
}

// The test (block_migration_test.py) computes the same bytes.
uint8_t Pattern(uint64_t round, uint32_t i) {
  return static_cast<uint8_t>(round * 7 + i * 3 + (i >> 8) + 1);
}
uint64_t BlockOf(uint64_t round) { return round * 37 % kBlocks; }

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  rt::virtio::Location where;
  if (!rt::virtio::FindDevice(info, rt::virtio::kDeviceBlock, where)) {
    rt::Fail(kName, 3, "no virtio-blk device");
  }
  Device::Options options = {};
  options.mode = rt::virtio::WaitMode::kInterrupt;
  if (Error e = blk.Init(where, options); e != Error::kOk) {
    rt::Printf("init: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 4, "initialisation failed");
  }
  rt::Printf("%s: blk ready\n", kName);
  const uint64_t wait = 10 * rt::TscPerMs();
  for (uint64_t n = 0; n < kMaxRounds; ++n) {
    if (n > 0) {
      if (BlkRequest(kBlkTIn, BlockOf(n - 1), true) != 0) rt::Fail(kName, 5, "read failed");
      for (uint32_t i = 0; i < kBlock; ++i) {
        if (data[i] != Pattern(n - 1, i)) {
          rt::Printf("round %lu: block %lu byte %u is %#x\n", n, BlockOf(n - 1), i, data[i]);
          rt::Fail(kName, 6, "read-back mismatch");
        }
      }
    }
    for (uint32_t i = 0; i < kBlock; ++i) data[i] = Pattern(n, i);
    if (BlkRequest(kBlkTOut, BlockOf(n), false) != 0) rt::Fail(kName, 5, "write failed");
    rt::Printf("blk %lu ok block %lu\n", n, BlockOf(n));
    const uint64_t deadline = rt::Rdtsc() + wait;
    while (rt::Rdtsc() < deadline) {
    }
  }
  rt::Fail(kName, 8, "rounds ran out");
}
