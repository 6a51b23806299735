// virtio_console: the console device (virtio 1.2 section 5.3) without MULTIPORT over virtio-mmio
// or virtio-pci (runtime/virtio_transport.h: virtio.transport=pci|mmio). Finds device id 3,
// initialises it with receiveq 0 and transmitq 1 (5.3.2), sends "hello from hvc0\n" on transmitq,
// then posts receive buffers one at a time and waits for each by interrupt (IOAPIC-routed GSI or
// MSI-X, hlt) until a '\n' arrives. `vireo run --console` connects the device to stdio, so the
// line comes from the VMM's stdin.
//
// Cmdline: vcon.timeout_ms=N bounds the wait for each receive buffer (default 10000).
//
// Prints "virtio-console features: ...", "sent N bytes", "console got: <line>" (on the UART) and
// "interrupts: N". Exit: debug-exit 0 (status 1) after "PASS virtio_console". Failures
// (debug-exit value -> status):
//   3 -> 7   no console device               6 -> 13  no complete line arrived in time
//   4 -> 9   initialisation failed           7 -> 15  the device returned more bytes than the
//   5 -> 11  the transmit did not complete            buffer held
#include "runtime.h"
#include "virtio.h"

namespace {

using rt::virtio::Buffer;
using rt::virtio::Device;
using rt::virtio::Error;

constexpr const char* kName = "virtio_console";
constexpr int kReceiveQueue = 0;
constexpr int kTransmitQueue = 1;
constexpr uint32_t kChunk = 64;   // bytes per receive buffer
constexpr int kMaxLine = 256;     // bytes kept of the line
constexpr int kMaxReceives = 64;  // receive buffers before giving up on a '\n'
constexpr uint32_t kDefaultTimeoutMs = 10000;

const char kGreeting[] = "hello from hvc0\n";

Device console;
uint8_t chunk[kChunk];
char line[kMaxLine + 1];

uint32_t ParseMs(const rt::BootInfo& info) {
  char v[16];
  if (!rt::CmdlineValue(info, "vcon.timeout_ms", v, sizeof(v))) return kDefaultTimeoutMs;
  uint32_t ms = 0;
  for (int i = 0; v[i] >= '0' && v[i] <= '9' && i < 9; ++i) ms = ms * 10 + (v[i] - '0');
  return ms ? ms : kDefaultTimeoutMs;
}

// Posts one receive buffer and waits for it; returns the bytes the device wrote, or -1.
int ReceiveChunk(uint32_t timeout_ms) {
  rt::virtio::Queue& q = console.queue(kReceiveQueue);
  Buffer b = rt::virtio::In(chunk, kChunk);
  uint16_t old = q.avail_idx();
  int head = q.Post(&b, 1, false);
  if (head < 0) return -1;
  console.Notify(kReceiveQueue, old);
  uint32_t len = 0;
  Error e = console.Wait(kReceiveQueue, head, &len, timeout_ms);
  if (e != Error::kOk) {
    rt::Printf("receive: %s (status %#x)\n", rt::virtio::ErrorName(e), console.Status());
    return -1;
  }
  if (len > kChunk) rt::Fail(kName, 7, "device wrote past the receive buffer");
  return static_cast<int>(len);
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  rt::virtio::Location where;
  if (!rt::virtio::FindDevice(info, rt::virtio::kDeviceConsole, where)) {
    rt::Fail(kName, 3, "no virtio console device");
  }
  Device::Options options = {};
  options.queues = 2;
  options.mode = rt::virtio::WaitMode::kInterrupt;
  Error e = console.Init(where, options);
  if (e != Error::kOk) {
    rt::Printf("init: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 4, "initialisation failed");
  }
  rt::Printf("virtio-console features: offered %#lx accepted %#lx\n", console.offered_features(),
             console.features());

  // 5.3.6: transmitq buffers are device-readable; the device completes them with length 0.
  Buffer out = rt::virtio::Out(kGreeting, sizeof(kGreeting) - 1);
  e = console.Transfer(kTransmitQueue, &out, 1);
  if (e != Error::kOk) {
    rt::Printf("transmit: %s (status %#x)\n", rt::virtio::ErrorName(e), console.Status());
    rt::Fail(kName, 5, "transmit did not complete");
  }
  rt::Printf("sent %u bytes\n", static_cast<unsigned>(sizeof(kGreeting) - 1));

  // 5.3.6: receiveq buffers are device-writable; input may arrive in any number of pieces.
  uint32_t timeout_ms = ParseMs(info);
  int len = 0;
  bool done = false;
  for (int r = 0; r < kMaxReceives && !done; ++r) {
    int n = ReceiveChunk(timeout_ms);
    if (n < 0) break;
    for (int i = 0; i < n && !done; ++i) {
      char c = static_cast<char>(chunk[i]);
      if (c == '\n') {
        done = true;
      } else if (c != '\r' && len < kMaxLine) {
        line[len++] = c;
      }
    }
  }
  line[len] = 0;
  rt::Printf("console got: %s\n", line);
  rt::Printf("interrupts: %u\n", console.interrupts());
  if (!done) rt::Fail(kName, 6, "no complete line on receiveq");
  rt::Pass(kName);
}
