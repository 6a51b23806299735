// virtio_rng: the entropy device (virtio 1.2 section 5.4) over virtio-mmio or virtio-pci. Finds
// device id 4 (runtime/virtio_transport.h: virtio.transport=pci|mmio, by default PCI when ACPI has
// an MCFG), initialises it, and reads 64 bytes twice, waiting for each completion by interrupt
// (IOAPIC-routed GSI or MSI-X, hlt).
//
// Cmdline: vrng.mode=poll waits by polling the used ring instead (no interrupt check);
// vrng.indirect=1 / vrng.event_idx=1 negotiate and use VIRTIO_F_INDIRECT_DESC / EVENT_IDX.
//
// Prints "virtio-rng features: ...", "rng read N: <first 16 bytes hex> (M bytes)",
// "interrupts: N". Exit: debug-exit 0 (status 1) after "PASS virtio_rng". Failures:
// 3 (status 7) no entropy device, 4 (status 9) initialisation failed, 5 (status 11) a request
// timed out or the device asked for a reset, 6 (status 13) the bytes were all zero or the device
// returned none, 7 (status 15) the two reads were identical, 8 (status 17) interrupt mode but a
// request completed without an interrupt (or none arrived at all).
#include "runtime.h"
#include "virtio.h"

namespace {

using rt::virtio::Device;
using rt::virtio::Error;

constexpr int kBytes = 64;
constexpr int kMaxRequests = 16;  // the device may return fewer bytes than asked for

uint8_t first[kBytes];
uint8_t second[kBytes];
Device rng;

bool CmdlineFlag(const rt::BootInfo& info, const char* key, const char* want) {
  char v[16];
  if (!rt::CmdlineValue(info, key, v, sizeof(v))) return false;
  for (int i = 0;; ++i) {
    if (v[i] != want[i]) return false;
    if (!v[i]) return true;
  }
}

// Fills buf[0..kBytes) with as many requests as it takes; returns the requests used.
int Fill(uint8_t* buf, bool indirect) {
  int got = 0;
  int requests = 0;
  while (got < kBytes && requests < kMaxRequests) {
    rt::virtio::Buffer b = rt::virtio::In(buf + got, kBytes - got);
    uint32_t len = 0;
    Error e = rng.Transfer(0, &b, 1, &len, indirect);
    ++requests;
    if (e == Error::kNoInterrupt) rt::Fail("virtio_rng", 8, "used buffer but no interrupt");
    if (e != Error::kOk) {
      rt::Printf("rng request failed: %s (status %#x)\n", rt::virtio::ErrorName(e), rng.Status());
      rt::Fail("virtio_rng", 5, "request did not complete");
    }
    if (len > static_cast<uint32_t>(kBytes - got)) {
      rt::Printf("device reported %u bytes for a %d-byte buffer\n", len, kBytes - got);
      len = kBytes - got;
    }
    got += len;
  }
  if (got < kBytes) rt::Fail("virtio_rng", 6, "device returned too few bytes");
  return requests;
}

void PrintRead(int n, const uint8_t* buf, int requests) {
  rt::Printf("rng read %d:", n);
  for (int i = 0; i < 16; ++i) rt::Printf(" %02x", buf[i]);
  rt::Printf(" (%d bytes, %d requests)\n", kBytes, requests);
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  rt::virtio::Location slot;
  if (!rt::virtio::FindDevice(info, rt::virtio::kDeviceEntropy, slot)) {
    rt::Fail("virtio_rng", 3, "no virtio entropy device");
  }
  Device::Options options = {};
  options.mode = CmdlineFlag(info, "vrng.mode", "poll") ? rt::virtio::WaitMode::kPoll
                                                        : rt::virtio::WaitMode::kInterrupt;
  bool indirect = CmdlineFlag(info, "vrng.indirect", "1");
  if (indirect) options.wanted_features |= rt::virtio::kFeatureIndirectDesc;
  if (CmdlineFlag(info, "vrng.event_idx", "1")) {
    options.wanted_features |= rt::virtio::kFeatureEventIdx;
  }
  Error e = rng.Init(slot, options);
  if (e != Error::kOk) {
    rt::Printf("init: %s\n", rt::virtio::ErrorName(e));
    rt::Fail("virtio_rng", 4, "initialisation failed");
  }
  rt::Printf("virtio-rng features: offered %#lx accepted %#lx, %s mode\n", rng.offered_features(),
             rng.features(), options.mode == rt::virtio::WaitMode::kPoll ? "poll" : "interrupt");

  int r1 = Fill(first, indirect);
  PrintRead(1, first, r1);
  int r2 = Fill(second, indirect);
  PrintRead(2, second, r2);
  rt::Printf("interrupts: %u\n", rng.interrupts());

  bool nonzero1 = false, nonzero2 = false, differ = false;
  for (int i = 0; i < kBytes; ++i) {
    nonzero1 = nonzero1 || first[i];
    nonzero2 = nonzero2 || second[i];
    differ = differ || first[i] != second[i];
  }
  if (!nonzero1 || !nonzero2) rt::Fail("virtio_rng", 6, "a read returned all zero bytes");
  if (!differ) rt::Fail("virtio_rng", 7, "the two reads were identical");
  if (options.mode == rt::virtio::WaitMode::kInterrupt && rng.interrupts() == 0) {
    rt::Fail("virtio_rng", 8, "no interrupt arrived");
  }
  rt::Pass("virtio_rng");
}
