// snapshot_virtio: a guest for the virtio snapshot test (tests/integration/snapshot_test.py).
// It sets up virtio-blk and virtio-rng (either transport, runtime/virtio_transport.h) once,
// with interrupts, then every round:
//   1. reads 16 bytes from the rng (interrupt-driven),
//   2. writes sector (round % 64) with a pattern keyed by the round, reads it back, checks it,
// prints "round N ok rng XX.. sector S" and waits about 20 ms on the TSC. The test snapshots
// it mid-run and restores: the restored guest carries on with round N+1 on the same queues
// (no re-initialisation), so its requests complete only if the transports, the queues'
// positions and the interrupt routing (MSI-X or GSI) came back as they were.
// Exit: debug-exit 3 (status 7) no device, 4 (9) init failed, 5 (11) a request failed or
// timed out, 6 (13) read-back mismatch, 7 (15) rng returned nothing; 8 (17) after kMaxRounds.
#include "runtime.h"
#include "virtio.h"

namespace {

using rt::virtio::Buffer;
using rt::virtio::Device;
using rt::virtio::Error;

constexpr const char* kName = "snapshot_virtio";
constexpr uint64_t kMaxRounds = 30000;
constexpr uint32_t kSector = 512;
constexpr uint32_t kBlkTIn = 0;
constexpr uint32_t kBlkTOut = 1;

struct BlkReqHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

Device blk;
Device rng;
BlkReqHeader header;
volatile uint8_t status;
alignas(512) uint8_t data[kSector];
uint8_t entropy[16];

void Init(Device& d, uint32_t id, const rt::BootInfo& info) {
  rt::virtio::Location where;
  if (!rt::virtio::FindDevice(info, id, where)) rt::Fail(kName, 3, "device missing");
  Device::Options options = {};
  options.mode = rt::virtio::WaitMode::kInterrupt;
  Error e = d.Init(where, options);
  if (e != Error::kOk) {
    rt::Printf("init device %u: %s\n", id, rt::virtio::ErrorName(e));
    rt::Fail(kName, 4, "initialisation failed");
  }
}

void Check(Error e, const char* what, Device& d) {
  if (e == Error::kOk) return;
  rt::Printf("%s: %s (device status %#x)\n", what, rt::virtio::ErrorName(e), d.Status());
  rt::Fail(kName, 5, "request did not complete");
}

uint8_t BlkRequest(uint32_t type, uint64_t sector, bool device_writes) {
  header = {type, 0, sector};
  status = 0xff;
  Buffer bufs[3] = {rt::virtio::Out(&header, sizeof(header)),
                    {reinterpret_cast<uint64_t>(data), kSector, device_writes},
                    rt::virtio::In(const_cast<uint8_t*>(&status), 1)};
  Check(blk.Transfer(0, bufs, 3), "blk request", blk);
  return status;
}

uint8_t Pattern(uint64_t round, uint32_t i) { return static_cast<uint8_t>(round * 7 + i); }

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  Init(blk, rt::virtio::kDeviceBlock, info);
  Init(rng, rt::virtio::kDeviceEntropy, info);
  rt::Printf("%s: blk and rng ready\n", kName);
  const uint64_t wait = 20 * rt::TscPerMs();
  for (uint64_t n = 0; n < kMaxRounds; ++n) {
    Buffer b = rt::virtio::In(entropy, sizeof(entropy));
    uint32_t len = 0;
    Check(rng.Transfer(0, &b, 1, &len), "rng request", rng);
    if (len == 0) rt::Fail(kName, 7, "rng returned no bytes");
    const uint64_t sector = n % 64;
    for (uint32_t i = 0; i < kSector; ++i) data[i] = Pattern(n, i);
    if (BlkRequest(kBlkTOut, sector, false) != 0) rt::Fail(kName, 5, "write failed");
    for (uint32_t i = 0; i < kSector; ++i) data[i] = 0;
    if (BlkRequest(kBlkTIn, sector, true) != 0) rt::Fail(kName, 5, "read failed");
    for (uint32_t i = 0; i < kSector; ++i) {
      if (data[i] != Pattern(n, i)) rt::Fail(kName, 6, "read-back mismatch");
    }
    rt::Printf("round %lu ok rng %02x%02x%02x%02x sector %lu\n", n, entropy[0], entropy[1],
               entropy[2], entropy[3], sector);
    const uint64_t deadline = rt::Rdtsc() + wait;
    while (rt::Rdtsc() < deadline) {
    }
  }
  rt::Fail(kName, 8, "rounds ran out");
}
