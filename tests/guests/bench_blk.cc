// bench_blk: the guest side of bench/run.sh's virtio-blk cases (docs/performance.md, "virtio-blk").
//
// Finds the first virtio block device (PCI when the ACPI tables have an MCFG, as
// runtime/virtio_transport.h says), drives it with its own split virtqueue of up to 256
// descriptors (the runtime's virtio::Device keeps at most 16, too few for 32 requests in
// flight), polls the used ring, and uses no interrupts. Set-up runs at CPL0; every measured loop
// runs at CPL3 through rt::RunAtCpl3: it writes descriptors and the available ring, notifies with
// one MMIO write to the notification address per batch (a KVM ioeventfd in Vireo and in QEMU, so
// no exit to user space), and polls the used ring.
//
// Cases, in this order, on one boot (the sequential write fills the region the reads use):
//   seqwrite  1 MiB writes, sectors 0.. upwards, `blk.seq_qd` in flight (default 4)
//   seqread   1 MiB reads of the same range
//   randread_qd1, randread_qd32    4 KiB reads at random 4 KiB-aligned offsets in the disk
//   randwrite_qd1, randwrite_qd32  4 KiB writes at random 4 KiB-aligned offsets
// Cmdline: blk.ops=N (random requests per case, default 4000), blk.seq_mib=M (MiB per sequential
// case, default 64, at most the disk's size), blk.seq_qd=Q (1..4).
//
// Each case prints "blk CASE ops=N bytes=B cycles=C errors=E", C being the guest TSC ticks from
// the first submission to the last completion (bench/vmm_probe converts them with the host's TSC
// rate). Then "blk done" and debug-exit 0 (status 1). Failures: 3 (status 7) no block device,
// 4 (status 9) set-up failed, 5 (status 11) a request failed.
#include "runtime.h"
#include "virtio.h"

namespace {

namespace v = rt::virtio;

constexpr const char* kName = "bench_blk";
constexpr uint32_t kBlkTIn = 0;
constexpr uint32_t kBlkTOut = 1;
constexpr uint64_t kBlkFSizeMax = 1ull << 1;
constexpr uint64_t kBlkFFlush = 1ull << 9;
constexpr uint32_t kSector = 512;

constexpr uint16_t kRingMax = 256;
constexpr int kMaxSlots = 32;          // requests in flight, at most
constexpr uint32_t kSmall = 4096;      // random request size
constexpr uint32_t kLarge = 1u << 20;  // sequential request size
constexpr int kMaxSeqQd = 4;
constexpr int kMaxSegs = 6;  // data descriptors per request (SIZE_MAX splits)

struct BlkReqHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

struct UsedElem {
  uint32_t id;
  uint32_t len;
};

// The queue: descriptor table, available ring, used ring (2.7), sized for kRingMax; a smaller
// negotiated size uses a prefix of each.
struct alignas(4096) Rings {
  v::Desc desc[kRingMax];
  struct {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[kRingMax + 1];
  } avail;
  struct alignas(4096) {
    uint16_t flags;
    uint16_t idx;
    UsedElem ring[kRingMax];
    uint16_t avail_event;
  } used;
};

Rings rings;
BlkReqHeader headers[kMaxSlots];
volatile uint8_t statuses[kMaxSlots];
alignas(4096) uint8_t small_bufs[kMaxSlots][kSmall];
alignas(4096) uint8_t large_bufs[kMaxSeqQd][kLarge];

v::Transport transport;
uint16_t ring_size;
uint16_t avail_idx;
uint16_t last_used;
uint32_t seg_size;  // largest data descriptor: size_max if offered, else the request size
uint64_t capacity;  // sectors

template <typename T>
volatile T& V(T& x) {
  return const_cast<volatile T&>(x);
}

// One measured case: what the CPL3 loop needs, and what it reports.
struct Job {
  uint32_t type;
  uint32_t bytes;  // per request
  int qd;
  uint64_t ops;
  bool random;
  uint64_t region_units;  // random: offsets in [0, region_units) * bytes
  uint64_t next_unit;     // sequential: the next offset / bytes
  uint64_t rng;
  uint64_t errors;
  uint64_t timeouts;
};

uint64_t NextUnit(Job& j) {
  if (!j.random) return j.next_unit++;
  // xorshift64*
  j.rng ^= j.rng >> 12;
  j.rng ^= j.rng << 25;
  j.rng ^= j.rng >> 27;
  return (j.rng * 0x2545f4914f6cdd1dull) % j.region_units;
}

int DescsPerSlot(uint32_t bytes) { return 2 + static_cast<int>((bytes + seg_size - 1) / seg_size); }

// Fills slot `s`'s chain (header, data in seg_size pieces, status) for the next offset and puts
// its head in the available ring (the caller publishes the index).
void Queue(Job& j, int s) {
  int per = DescsPerSlot(j.bytes);
  uint16_t d = static_cast<uint16_t>(s * per);
  uint64_t unit = NextUnit(j);
  headers[s] = {j.type, 0, unit * (j.bytes / kSector)};
  statuses[s] = 0xff;
  uint8_t* data = j.bytes == kLarge ? large_bufs[s] : small_bufs[s];
  bool writes = j.type == kBlkTIn;
  uint16_t i = d;
  rings.desc[i] = {reinterpret_cast<uint64_t>(&headers[s]), sizeof(BlkReqHeader), v::kDescNext,
                   static_cast<uint16_t>(i + 1)};
  ++i;
  for (uint32_t off = 0; off < j.bytes; off += seg_size, ++i) {
    uint32_t len = j.bytes - off < seg_size ? j.bytes - off : seg_size;
    rings.desc[i] = {reinterpret_cast<uint64_t>(data + off), len,
                     static_cast<uint16_t>(v::kDescNext | (writes ? v::kDescWrite : 0)),
                     static_cast<uint16_t>(i + 1)};
  }
  rings.desc[i] = {reinterpret_cast<uint64_t>(&statuses[s]), 1, v::kDescWrite, 0};
  V(rings.avail.ring[avail_idx % ring_size]) = d;
  ++avail_idx;
}

void Publish() {
  asm volatile("" ::: "memory");  // x86 keeps stores in order; the compiler must too
  V(rings.avail.idx) = avail_idx;
  asm volatile("mfence" ::: "memory");
  transport.Notify(0);
}

// Runs at CPL3: submits `qd` requests, then refills each slot as its request completes, until
// `ops` have completed. Returns the number of completions.
uint64_t RunJob(uint64_t arg) {
  Job& j = *reinterpret_cast<Job*>(arg);
  int per = DescsPerSlot(j.bytes);
  uint64_t submitted = 0, done = 0;
  for (int s = 0; s < j.qd && submitted < j.ops; ++s, ++submitted) Queue(j, s);
  Publish();
  uint64_t spins = 0;
  while (done < j.ops) {
    uint16_t used_idx = V(rings.used.idx);
    if (used_idx == last_used) {
      asm volatile("pause" ::: "memory");
      if (++spins > (1ull << 34)) {  // minutes: the device stopped answering
        ++j.timeouts;
        return done;
      }
      continue;
    }
    spins = 0;
    asm volatile("" ::: "memory");
    bool refilled = false;
    while (last_used != used_idx) {
      uint32_t head = V(rings.used.ring[last_used % ring_size].id);
      ++last_used;
      ++done;
      int s = static_cast<int>(head / per);
      if (statuses[s] != 0) ++j.errors;
      if (submitted < j.ops) {
        Queue(j, s);
        ++submitted;
        refilled = true;
      }
    }
    if (refilled) Publish();
  }
  return done;
}

void SetUp(const rt::BootInfo& info) {
  v::Location where;
  if (!v::FindDevice(info, v::kDeviceBlock, where)) rt::Fail(kName, 3, "no virtio block device");
  if (!transport.Open(where)) rt::Fail(kName, 4, "not a modern virtio device");
  transport.SetStatus(0);
  for (int i = 0; i < 1000 && transport.Status() != 0; ++i) rt::Pause();
  uint32_t status = v::kStatusAcknowledge | v::kStatusDriver;
  transport.SetStatus(v::kStatusAcknowledge);
  transport.SetStatus(status);
  uint64_t offered = transport.DeviceFeatures();
  if (!(offered & v::kFeatureVersion1)) rt::Fail(kName, 4, "no VIRTIO_F_VERSION_1");
  // FLUSH: without it QEMU turns the device's write cache off (writethrough: every write is
  // followed by a flush of the image), which is not the cache=writeback being compared.
  uint64_t features = offered & (v::kFeatureVersion1 | kBlkFSizeMax | kBlkFFlush);
  transport.SetDriverFeatures(features);
  status |= v::kStatusFeaturesOk;
  transport.SetStatus(status);
  if (!(transport.Status() & v::kStatusFeaturesOk)) rt::Fail(kName, 4, "FEATURES_OK refused");
  uint32_t qmax = transport.QueueMax(0);
  ring_size = qmax < kRingMax ? static_cast<uint16_t>(qmax) : kRingMax;
  seg_size = kLarge;
  if (features & kBlkFSizeMax) {
    uint32_t size_max = transport.Config32(8);  // 5.2.4: capacity (le64), then size_max
    if (size_max >= kSmall && size_max < seg_size) seg_size = size_max & ~(kSmall - 1);
  }
  if (ring_size < kMaxSlots * DescsPerSlot(kSmall) || DescsPerSlot(kLarge) - 2 > kMaxSegs) {
    rt::Printf("queue max %u, size_max-limited segment %u bytes\n", qmax, seg_size);
    rt::Fail(kName, 4, "queue too small for 32 requests in flight");
  }
  if (!transport.SetUpQueue(0, ring_size, reinterpret_cast<uint64_t>(rings.desc),
                            reinterpret_cast<uint64_t>(&rings.avail),
                            reinterpret_cast<uint64_t>(&rings.used))) {
    rt::Fail(kName, 4, "queue set-up refused");
  }
  // 2.7.7: no interrupts wanted; the loops poll.
  V(rings.avail.flags) = v::kAvailNoInterrupt;
  transport.SetStatus(status | v::kStatusDriverOk);
  capacity = uint64_t{transport.Config32(0)} | uint64_t{transport.Config32(4)} << 32;
  rt::Printf("bench_blk: %s, queue %u of %u, capacity %lu sectors, segment %u bytes\n",
             v::TransportName(where.kind), ring_size, qmax, capacity, seg_size);
}

Job job;  // the case being run (static: the CPL3 loop reads it)

void RunCase(const char* name, const Job& spec) {
  job = spec;
  Job& j = job;
  uint64_t start = rt::Rdtsc();
  uint64_t done = rt::RunAtCpl3(RunJob, reinterpret_cast<uint64_t>(&j));
  uint64_t cycles = rt::Rdtsc() - start;
  rt::Printf("blk %s ops=%lu bytes=%lu cycles=%lu errors=%lu\n", name, done,
             done * uint64_t{j.bytes}, cycles, j.errors);
  if (j.timeouts) rt::Fail(kName, 5, "the device stopped completing requests");
  if (j.errors) rt::Fail(kName, 5, "requests ended with a non-OK status");
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  SetUp(info);
  uint64_t ops = rt::CmdlineNumber(info, "blk.ops", 4000);
  uint64_t seq_mib = rt::CmdlineNumber(info, "blk.seq_mib", 64);
  uint64_t seq_qd = rt::CmdlineNumber(info, "blk.seq_qd", 4);
  if (seq_qd < 1) seq_qd = 1;
  if (seq_qd > kMaxSeqQd) seq_qd = kMaxSeqQd;
  uint64_t disk_mib = capacity / (kLarge / kSector);
  if (seq_mib > disk_mib) seq_mib = disk_mib;
  uint64_t small_units = capacity / (kSmall / kSector);
  if (seq_mib == 0 || small_units == 0) rt::Fail(kName, 4, "the disk is smaller than 1 MiB");

  Job seqw = {kBlkTOut, kLarge, static_cast<int>(seq_qd), seq_mib, false, 0, 0, 0, 0, 0};
  RunCase("seqwrite", seqw);
  Job seqr = {kBlkTIn, kLarge, static_cast<int>(seq_qd), seq_mib, false, 0, 0, 0, 0, 0};
  RunCase("seqread", seqr);
  const struct {
    const char* name;
    uint32_t type;
    int qd;
  } cases[] = {{"randread_qd1", kBlkTIn, 1},
               {"randread_qd32", kBlkTIn, 32},
               {"randwrite_qd1", kBlkTOut, 1},
               {"randwrite_qd32", kBlkTOut, 32}};
  uint64_t seed = 0x9e3779b97f4a7c15ull;
  for (const auto& c : cases) {
    Job j = {c.type, kSmall, c.qd, ops, true, small_units, 0, seed, 0, 0};
    seed += 0x9e3779b97f4a7c15ull;
    RunCase(c.name, j);
  }
  rt::Printf("blk done\n");
  return 0;
}
