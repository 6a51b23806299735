// virtio_hostile: sends an entropy device (virtio 1.2 section 5.4; over virtio-mmio or virtio-pci,
// see runtime/virtio_transport.h) requests that break the split virtqueue rules (2.7), then checks
// the device still serves a valid request. After each attack the device may complete the bad chain
// (with any used length), ignore it, or set DEVICE_NEEDS_RESET (2.1.2); all are acceptable. What is
// not: a device that stays unusable after a reset and re-initialisation (3.1), or a VMM that dies
// (the test then sees no exit status).
//
// Attacks: a descriptor loop; a buffer outside guest RAM (0x7ffffffff000); a buffer that starts
// in RAM and ends past it; a buffer whose address + length overflows 64 bits (lengths are kept
// small: QEMU's rng allocates and fills the whole length it sees); an indirect table inside an
// indirect table (2.7.5.3.1 forbids it); an available-ring head past the queue size; a queue size
// that is not a power of two (2.7); QueueNotify for a posted chain before DRIVER_OK (3.1.1).
//
// Prints, per attack, "attack NAME: <completed len N | ignored | needs reset>, status S" and then
// "  device still works" or "  recovered by reset". Exit: debug-exit 0 (status 1) after
// "PASS virtio_hostile". Failures: 3 (status 7) no entropy device, 4 (status 9) initialisation
// failed, 5 (status 11) a valid read failed before any attack, 6 (status 13) the device could not
// be used again after an attack even after a reset and re-initialisation.
#include "runtime.h"
#include "virtio.h"

namespace {

using rt::virtio::Buffer;
using rt::virtio::Desc;
using rt::virtio::Device;
using rt::virtio::Error;
using rt::virtio::Queue;

constexpr const char* kName = "virtio_hostile";
constexpr uint32_t kAttackWaitMs = 300;
constexpr uint64_t kOutsideRam = 0x7ffffffff000ull;

Device rng;
alignas(64) uint8_t buf[256];
int attacks;
int kept_working;
int recovered;

// A valid 16-byte read; kOk if it completed with at most 16 bytes.
Error ValidRead() {
  Buffer b = rt::virtio::In(buf, 16);
  uint32_t len = 0;
  Error e = rng.Transfer(0, &b, 1, &len);
  if (e == Error::kOk && len > 16) rt::Printf("  valid read: used length %u > 16\n", len);
  return e;
}

void Recover(const char* why) {
  rt::Printf("  %s; resetting\n", why);
  Error e = rng.Reinit();
  if (e == Error::kOk) e = ValidRead();
  if (e != Error::kOk) {
    rt::Printf("  after reset: %s (status %#x)\n", rt::virtio::ErrorName(e), rng.Status());
    rt::Fail(kName, 6, "device unusable after reset and re-initialisation");
  }
  rt::Printf("  recovered by reset\n");
  ++recovered;
}

// Publishes `head`, notifies, reports what the device did, then checks it still works.
void Finish(const char* name, int head) {
  ++attacks;
  Queue& q = rng.queue(0);
  uint16_t old = q.avail_idx();
  q.PublishHead(static_cast<uint16_t>(head));
  rng.Notify(0, old, true);
  uint32_t len = 0;
  Error e = rng.Wait(0, head, &len, kAttackWaitMs);
  uint32_t status = rng.Status();
  if (e == Error::kOk) {
    rt::Printf("attack %s: completed len %u, status %#x\n", name, len, status);
  } else if (e == Error::kTimeout) {
    rt::Printf("attack %s: ignored, status %#x\n", name, status);
  } else {
    rt::Printf("attack %s: %s, status %#x\n", name, rt::virtio::ErrorName(e), status);
  }
  if (status & rt::virtio::kStatusNeedsReset) return Recover("device needs reset");
  e = ValidRead();
  if (e != Error::kOk) return Recover(rt::virtio::ErrorName(e));
  rt::Printf("  device still works\n");
  ++kept_working;
}

void DescriptorLoop() {
  Buffer b[2] = {rt::virtio::In(buf, 16), rt::virtio::In(buf + 16, 16)};
  Queue& q = rng.queue(0);
  int head = q.Prepare(b, 2, false);
  Desc& second = q.rings().desc[q.rings().desc[head].next];
  second.flags |= rt::virtio::kDescNext;
  second.next = static_cast<uint16_t>(head);
  Finish("descriptor-loop", head);
}

void OutsideRam() {
  Buffer b = {kOutsideRam, 64, true};
  Finish("outside-ram", rng.queue(0).Prepare(&b, 1, false));
}

// A buffer that starts in the last page of RAM and runs 4 KiB past it.
void CrossesRamEnd(uint64_t ram_end) {
  Buffer b = {ram_end - 0x800, 0x1000, true};
  Finish("crosses-ram-end", rng.queue(0).Prepare(&b, 1, false));
}

// addr + len overflows 64 bits.
void AddressWraps() {
  Buffer b = {0xfffffffffffff000ull, 0x2000, true};
  Finish("address-wraps", rng.queue(0).Prepare(&b, 1, false));
}

// The end of the RAM range that holds this image (the e820 map's RAM ranges).
uint64_t RamEnd(const rt::BootInfo& info) {
  uint64_t here = reinterpret_cast<uint64_t>(buf);
  for (int i = 0; i < info.memory_count; ++i) {
    const rt::MemoryRange& r = info.memory[i];
    if (r.type == 1 && here >= r.addr && here - r.addr < r.size) return r.addr + r.size;
  }
  return 0;
}

void NestedIndirect() {
  Queue& q = rng.queue(0);
  Buffer b = rt::virtio::In(buf, 16);
  int head = q.Prepare(&b, 1, true);  // INDIRECT whether or not it was negotiated
  auto* table = reinterpret_cast<Desc*>(q.rings().desc[head].addr);
  Desc* inner = q.rings().indirect[0] == table ? q.rings().indirect[1] : q.rings().indirect[0];
  inner[0] = {reinterpret_cast<uint64_t>(buf), 16, rt::virtio::kDescWrite, 0};
  table[0] = {reinterpret_cast<uint64_t>(inner), sizeof(Desc), rt::virtio::kDescIndirect, 0};
  Finish("nested-indirect", head);
}

void HeadOutOfRange() {
  Finish("head-out-of-range", 200);  // queue size is at most 16
}

// A queue size of 15: the device may refuse it (QueueReady, NEEDS_RESET) or use it.
void OddQueueSize() {
  ++attacks;
  rng.mutable_options().queue_size = 15;
  Error e = rng.Reinit();
  Error r = e == Error::kOk ? ValidRead() : e;
  rt::Printf("attack queue-size-15: init %s, read %s, status %#x\n", rt::virtio::ErrorName(e),
             rt::virtio::ErrorName(r), rng.Status());
  rng.mutable_options().queue_size = 0;  // the default: 16, or the device's maximum
  Recover("back to the default queue size");
}

void NotifyEarly(Device& d) {
  Buffer b = rt::virtio::In(buf + 64, 16);
  uint16_t old = d.queue(0).avail_idx();
  d.queue(0).Post(&b, 1, false);
  d.Notify(0, old, true);
}

void NotifyBeforeDriverOk() {
  ++attacks;
  rng.mutable_options().before_driver_ok = NotifyEarly;
  Error e = rng.Reinit();
  rng.mutable_options().before_driver_ok = nullptr;
  uint32_t strays = rng.stray_completions();
  Error r = e == Error::kOk ? ValidRead() : e;
  rt::Printf("attack notify-before-driver-ok: init %s, read %s, early request %s, status %#x\n",
             rt::virtio::ErrorName(e), rt::virtio::ErrorName(r),
             rng.stray_completions() != strays ? "completed" : "not completed", rng.Status());
  if (r == Error::kOk && !(rng.Status() & rt::virtio::kStatusNeedsReset)) {
    rt::Printf("  device still works\n");
    ++kept_working;
  } else {
    Recover(rt::virtio::ErrorName(r));
  }
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  rt::virtio::Location slot;
  if (!rt::virtio::FindDevice(info, rt::virtio::kDeviceEntropy, slot)) {
    rt::Fail(kName, 3, "no virtio entropy device");
  }
  Device::Options options = {};
  options.wanted_features = rt::virtio::kFeatureIndirectDesc;
  options.timeout_ms = 1000;
  Error e = rng.Init(slot, options);
  if (e != Error::kOk) {
    rt::Printf("init: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 4, "initialisation failed");
  }
  rt::Printf("virtio-rng features: offered %#lx accepted %#lx\n", rng.offered_features(),
             rng.features());
  e = ValidRead();
  if (e != Error::kOk) {
    rt::Printf("valid read: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 5, "valid read failed before any attack");
  }

  DescriptorLoop();
  OutsideRam();
  uint64_t ram_end = RamEnd(info);
  if (ram_end) CrossesRamEnd(ram_end);
  AddressWraps();
  NestedIndirect();
  HeadOutOfRange();
  OddQueueSize();
  NotifyBeforeDriverOk();

  rt::Printf("attacks: %d, device kept working: %d, recovered by reset: %d\n", attacks,
             kept_working, recovered);
  rt::Pass(kName);
}
