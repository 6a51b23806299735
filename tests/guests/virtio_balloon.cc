// virtio_balloon: the traditional memory balloon (virtio 1.2 section 5.5) over virtio-mmio or
// virtio-pci (runtime/virtio_transport.h: virtio.transport=pci|mmio), driven step by step by a
// host script (tests/integration/virtio_balloon_test.sh) that measures the VMM's RSS between
// steps. Finds device id 5, negotiates VIRTIO_BALLOON_F_STATS_VQ (so the queues are inflateq 0,
// deflateq 1, statsq 2: 5.5.2), then:
//   1. writes one byte in each 4 KiB page of a RAM region at CPL3 (the host emulates CPL0 on
//      some machines), prints "touched N pages at 0xADDR" and waits for a byte on COM1;
//   2. inflates the balloon with those pages: arrays of le32 PFNs on inflateq, at most
//      kPfnsPerChain per chain (5.5.6.1), prints "inflated N pages" and waits for another byte
//      (meanwhile the host checks that the VMM's RSS dropped: it discarded the pages);
//   3. deflates them on deflateq (5.5.6.2), checks at CPL3 that a sample of the pages reads as
//      zero (the host's copy was discarded, so they come back as fresh pages) and rewrites them;
//   4. posts a buffer of memory statistics on statsq (5.5.6.3).
// The runtime's Device sets up two queues; statsq is a one-buffer ring of this file's own, set
// up through a second transport handle before DRIVER_OK and never waited on (the device keeps
// the buffer until the host asks for fresh statistics).
//
// Cmdline: vballoon.mib=N   size of the region (default 64, at most 512)
//          vballoon.wait_ms=N   bound on each wait for a COM1 byte (default 30000)
//
// Exit: debug-exit 0 (status 1) after "PASS virtio_balloon". Failures (debug-exit value ->
// status):
//   3 -> 7   no balloon device                 7 -> 15  an inflate or deflate request failed
//   4 -> 9   initialisation failed             8 -> 17  a deflated page did not read as zero
//   5 -> 11  STATS_VQ not offered, or statsq   9 -> 19  a rewritten page did not read back
//            could not be set up              10 -> 21  no COM1 byte arrived in time
//   6 -> 13  no RAM region big enough
#include "runtime.h"
#include "virtio.h"

extern "C" char __image_end[];

namespace {

using rt::virtio::Buffer;
using rt::virtio::Device;
using rt::virtio::Error;

constexpr const char* kName = "virtio_balloon";
constexpr uint32_t kDeviceBalloon = 5;  // 5 Device Types
constexpr uint64_t kFStatsVq = 1ull << 1;
constexpr int kInflateQueue = 0;
constexpr int kDeflateQueue = 1;
constexpr int kStatsQueue = 2;
constexpr uint64_t kPage = 4096;
constexpr uint32_t kPfnsPerChain = 256;           // as Linux (VIRTIO_BALLOON_ARRAY_PFNS_MAX)
constexpr uint64_t kRegionFloor = 16ull << 20;    // leave the image and low memory alone
constexpr uint64_t kIdentityMapEnd = 3ull << 30;  // below the MMIO hole
constexpr uint64_t kSampleStride = 61;            // pages between the deflate checks
constexpr uint32_t kDefaultMiB = 64;

// 5.5.6.3 struct virtio_balloon_stat.
struct __attribute__((packed)) Stat {
  uint16_t tag;
  uint64_t val;
};
static_assert(sizeof(Stat) == 10);
constexpr uint16_t kStatFreeMemory = 4;
constexpr uint16_t kStatTotalMemory = 5;

// statsq: one descriptor, never recycled.
constexpr uint16_t kStatsRingSize = 4;
struct alignas(16) StatsRing {
  rt::virtio::Desc desc[kStatsRingSize];
  struct {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[kStatsRingSize];
  } avail;
  struct alignas(4) {
    uint16_t flags;
    uint16_t idx;
    struct {
      uint32_t id, len;
    } ring[kStatsRingSize];
  } used;
};

Device balloon;
rt::virtio::Transport stats_transport;
StatsRing stats_ring;
bool stats_ready;
Stat stats[2];
uint32_t pfns[kPfnsPerChain];

// The region, read at CPL3 (the identity map is user-accessible).
volatile uint64_t region_base;
volatile uint64_t region_pages;

// A 2 MiB-aligned stretch of e820 RAM of `bytes`, at or above kRegionFloor and the image.
uint64_t FindRegion(const rt::BootInfo& info, uint64_t bytes) {
  uint64_t floor = reinterpret_cast<uint64_t>(__image_end);
  if (floor < kRegionFloor) floor = kRegionFloor;
  for (int i = 0; i < info.memory_count; ++i) {
    const rt::MemoryRange& r = info.memory[i];
    if (r.type != 1) continue;
    uint64_t start = r.addr > floor ? r.addr : floor;
    start = (start + (2ull << 20) - 1) & ~((2ull << 20) - 1);
    uint64_t end = r.addr + r.size;
    if (end > kIdentityMapEnd) end = kIdentityMapEnd;
    if (start + bytes <= end) return start;
  }
  return 0;
}

// ---- CPL3 work: a byte per page, and the deflate check. ----

uint8_t Pattern(uint64_t page) { return static_cast<uint8_t>(0x5a ^ page ^ (page >> 8)) | 1; }

uint64_t TouchPages(uint64_t) {
  for (uint64_t p = 0; p < region_pages; ++p) {
    *reinterpret_cast<volatile uint8_t*>(region_base + p * kPage) = Pattern(p);
  }
  return 0;
}

// Every kSampleStride-th page: all of it must be zero; then it is rewritten and read back.
// Returns 0, or 1 + the index of the first page that was not zero, with bit 63 set if it was
// the rewrite that failed.
uint64_t CheckDeflated(uint64_t) {
  for (uint64_t p = 0; p < region_pages; p += kSampleStride) {
    auto* words = reinterpret_cast<volatile uint64_t*>(region_base + p * kPage);
    for (uint64_t w = 0; w < kPage / 8; ++w) {
      if (words[w] != 0) return p + 1;
    }
    auto* byte = reinterpret_cast<volatile uint8_t*>(words);
    *byte = Pattern(p);
    if (*byte != Pattern(p)) return (p + 1) | 1ull << 63;
  }
  return 0;
}

// ---- COM1: the host's go-ahead. ----

void WaitForHost(uint64_t wait_ms, const char* step) {
  rt::Deadline deadline = rt::Deadline::InMs(wait_ms);
  while (!(rt::Inb(rt::kCom1 + rt::kUartLsr) & rt::kLsrDataReady)) {
    if (deadline.Expired()) {
      rt::Printf("no byte on COM1 after %s\n", step);
      rt::Fail(kName, 10, "the host did not answer");
    }
    rt::DelayUs(1000);
  }
  rt::Inb(rt::kCom1 + rt::kUartRbr);
}

// ---- statsq (5.5.6.3). ----

void SetUpStatsQueue(Device& d) {
  if (!d.Has(kFStatsVq)) return;
  if (!stats_transport.Open(d.transport().location())) return;
  uint32_t max = stats_transport.QueueMax(kStatsQueue);
  if (max < kStatsRingSize || stats_transport.QueueEnabled(kStatsQueue)) return;
  stats_ready = stats_transport.SetUpQueue(
      kStatsQueue, kStatsRingSize, reinterpret_cast<uint64_t>(&stats_ring.desc),
      reinterpret_cast<uint64_t>(&stats_ring.avail), reinterpret_cast<uint64_t>(&stats_ring.used));
}

void PostStats(uint64_t total, uint64_t free) {
  stats[0] = {kStatTotalMemory, total};
  stats[1] = {kStatFreeMemory, free};
  stats_ring.desc[0] = {reinterpret_cast<uint64_t>(&stats), sizeof(stats), 0, 0};
  volatile auto& avail = stats_ring.avail;
  avail.ring[0] = 0;
  rt::Barrier();
  avail.idx = 1;
  asm volatile("mfence" ::: "memory");
  stats_transport.Notify(kStatsQueue);
}

// ---- inflateq / deflateq (5.5.6.1, 5.5.6.2). ----

// Sends the region's PFNs on queue `q`, kPfnsPerChain per chain; returns the pages sent.
uint64_t SendPfns(int q) {
  uint64_t first = region_base / kPage;
  uint64_t sent = 0;
  while (sent < region_pages) {  // bounded: each round sends at least one PFN
    uint32_t n = 0;
    for (; n < kPfnsPerChain && sent + n < region_pages; ++n) {
      pfns[n] = static_cast<uint32_t>(first + sent + n);
    }
    Buffer b = rt::virtio::Out(pfns, n * sizeof(uint32_t));
    Error e = balloon.Transfer(q, &b, 1);
    if (e != Error::kOk) {
      rt::Printf("%s chain at page %lu: %s (status %#x)\n",
                 q == kInflateQueue ? "inflate" : "deflate", sent, rt::virtio::ErrorName(e),
                 balloon.Status());
      rt::Fail(kName, 7, "a balloon request failed");
    }
    sent += n;
  }
  return sent;
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  uint64_t mib = rt::CmdlineNumber(info, "vballoon.mib", kDefaultMiB);
  if (mib > 512) mib = 512;
  uint64_t wait_ms = rt::CmdlineNumber(info, "vballoon.wait_ms", 30000);

  rt::virtio::Location where;
  if (!rt::virtio::FindDevice(info, kDeviceBalloon, where)) {
    rt::Fail(kName, 3, "no virtio balloon device");
  }
  Device::Options options = {};
  options.queues = 2;
  options.wanted_features = kFStatsVq;
  options.mode = rt::virtio::WaitMode::kInterrupt;
  options.before_driver_ok = SetUpStatsQueue;
  Error e = balloon.Init(where, options);
  if (e != Error::kOk) {
    rt::Printf("init: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 4, "initialisation failed");
  }
  rt::Printf("virtio-balloon features: offered %#lx accepted %#lx\n", balloon.offered_features(),
             balloon.features());
  if (!balloon.Has(kFStatsVq) || !stats_ready) rt::Fail(kName, 5, "no statsq");
  rt::Printf("balloon target: %u pages, actual %u\n", balloon.Config32(0), balloon.Config32(4));

  uint64_t bytes = mib << 20;
  uint64_t base = FindRegion(info, bytes);
  if (!base) rt::Fail(kName, 6, "no RAM region big enough");
  region_base = base;
  region_pages = bytes / kPage;

  rt::RunAtCpl3(TouchPages, 0);
  rt::Printf("touched %lu pages at %#lx\n", region_pages, base);
  WaitForHost(wait_ms, "touching");

  uint64_t inflated = SendPfns(kInflateQueue);
  rt::Printf("inflated %lu pages\n", inflated);
  WaitForHost(wait_ms, "inflating");

  uint64_t deflated = SendPfns(kDeflateQueue);
  rt::Printf("deflated %lu pages\n", deflated);
  uint64_t bad = rt::RunAtCpl3(CheckDeflated, 0);
  if (bad) {
    uint64_t page = (bad & ~(1ull << 63)) - 1;
    rt::Printf("page %lu at %#lx: %s\n", page, base + page * kPage,
               bad >> 63 ? "rewrite did not read back" : "not zero after the balloon");
    rt::Fail(kName, bad >> 63 ? 9 : 8, "deflated page check failed");
  }
  rt::Printf("deflated pages read as zero (1 in %lu checked) and were rewritten\n", kSampleStride);

  uint64_t total = 0;
  for (int i = 0; i < info.memory_count; ++i) {
    if (info.memory[i].type == 1) total += info.memory[i].size;
  }
  PostStats(total, bytes);
  rt::Printf("stats posted: total %lu free %lu\n", total, bytes);
  rt::Printf("interrupts: %u\n", balloon.interrupts());
  rt::Pass(kName);
}
