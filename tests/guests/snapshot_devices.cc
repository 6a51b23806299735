// snapshot_devices: a guest for the device-state snapshot and migration tests
// (tests/integration/device_state_test.py). It sets up, once and polled, whichever of
// virtio-net, virtio-balloon and virtio-vsock the VM has (either transport,
// runtime/virtio_transport.h), prints "ready: net N balloon B vsock V", then every round:
//   net:     ARPs for the host (10.0.2.1, from 10.0.2.15) and waits for the reply;
//   balloon: reads num_pages, inflates or deflates to it (PFNs from 64 MiB up, at most 256
//            per chain) and writes `actual` (5.5.6);
//   vsock:   connects to host port vsock.host_port (default 5000), sends "round N", reads
//            it back, shuts down (both directions). The event queue (queue 2, set up through a
//            second transport handle) is watched: a VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, which a
//            restored device sends because host connections are not carried, drops the
//            connection in flight, prints "vsock transport reset", re-reads guest_cid and the
//            round connects again;
// then prints "round N net ok balloon A vsock ok" ("-" for a device it lacks) and waits about 20 ms
// on the TSC. A restored or migrated guest carries on with round N+1 on the same queues (no
// re-initialisation), so every device's rings, positions and state must have come back.
// Exit: debug-exit 3 (status 7) no such device at all, 4 (9) initialisation failed, 5 (11) net:
// no ARP reply within 10 s, 6 (13) a balloon or transmit request failed, 7 (15) vsock: no echo
// in 5 attempts, 8 (17) after kMaxRounds.
#include "runtime.h"
#include "virtio.h"

namespace {

using rt::virtio::Buffer;
using rt::virtio::Device;
using rt::virtio::Error;

constexpr const char* kName = "snapshot_devices";
constexpr uint64_t kMaxRounds = 30000;

uint32_t NumberArg(const rt::BootInfo& info, const char* key, uint32_t fallback) {
  char v[12];
  if (!rt::CmdlineValue(info, key, v, sizeof(v))) return fallback;
  uint32_t n = 0;
  for (int i = 0; v[i] >= '0' && v[i] <= '9'; ++i) n = n * 10 + static_cast<uint32_t>(v[i] - '0');
  return n;
}

bool Init(Device& d, const rt::BootInfo& info, uint32_t id, Device::Options options) {
  rt::virtio::Location where;
  if (!rt::virtio::FindDevice(info, id, where)) return false;
  options.mode = rt::virtio::WaitMode::kPoll;
  if (Error e = d.Init(where, options); e != Error::kOk) {
    rt::Printf("init device %u: %s\n", id, rt::virtio::ErrorName(e));
    rt::Fail(kName, 4, "initialisation failed");
  }
  return true;
}

void Transfer(Device& d, int q, const Buffer& b) {
  if (Error e = d.Transfer(q, &b, 1); e != Error::kOk) {
    rt::Printf("device %u queue %d: %s\n", d.device_id(), q, rt::virtio::ErrorName(e));
    d.PrintQueue(q);
    rt::Fail(kName, 6, "a request did not complete");
  }
}

// ---- virtio-net (5.1): ARP for the host. ----

constexpr uint32_t kDeviceNet = 1;
constexpr uint64_t kNetFMac = 1ull << 5;
constexpr int kNetRx = 0, kNetTx = 1;
constexpr int kNetRxBuffers = 8;
constexpr uint32_t kNetRxBytes = 2048;  // a header and a 1514-byte frame fit (5.1.6.3.1)
constexpr uint32_t kNetHdr = 12;        // struct virtio_net_hdr_v1
constexpr uint8_t kGuestIp[4] = {10, 0, 2, 15};
constexpr uint8_t kHostIp[4] = {10, 0, 2, 1};

Device net;
uint8_t mac[6];
alignas(16) uint8_t net_rx[kNetRxBuffers][kNetRxBytes];
int net_owner[rt::virtio::Queue::kMaxSize];
alignas(16) uint8_t arp[kNetHdr + 60];

void PostNetRx(int buffer) {
  Buffer b = rt::virtio::In(net_rx[buffer], kNetRxBytes);
  rt::virtio::Queue& q = net.queue(kNetRx);
  uint16_t old = q.avail_idx();
  net_owner[q.Post(&b, 1, false)] = buffer;
  net.Notify(kNetRx, old);
}

void SetUpNet() {
  for (int i = 0; i < 6; ++i) mac[i] = net.Config8(i);
  for (int i = 0; i < kNetRxBuffers; ++i) PostNetRx(i);
  uint8_t* f = arp + kNetHdr;  // the header stays zero: no offloads
  for (int i = 0; i < 6; ++i) f[i] = 0xff, f[6 + i] = mac[i], f[22 + i] = mac[i], f[32 + i] = 0;
  const uint8_t fixed[] = {0x08, 0x06, 0, 1, 0x08, 0, 6, 4, 0, 1};  // ARP request for IPv4
  for (int i = 0; i < 10; ++i) f[12 + i] = fixed[i];
  for (int i = 0; i < 4; ++i) f[28 + i] = kGuestIp[i], f[38 + i] = kHostIp[i];
}

// True when an ARP reply from the host arrives within `ms`; other frames are skipped.
bool NetReply(uint32_t ms) {
  rt::Deadline deadline = rt::Deadline::InMs(ms);
  rt::virtio::Queue& q = net.queue(kNetRx);
  while (!deadline.Expired()) {
    rt::virtio::Queue::UsedElem e;
    if (!q.PopUsed(e)) {
      rt::Pause();
      continue;
    }
    if (e.id >= rt::virtio::Queue::kMaxSize) rt::Fail(kName, 4, "net: used id out of range");
    const int buffer = net_owner[e.id];
    const uint8_t* f = net_rx[buffer] + kNetHdr;
    bool reply = e.len >= kNetHdr + 42 && f[12] == 0x08 && f[13] == 0x06 && f[21] == 2;
    for (int i = 0; reply && i < 4; ++i) reply = f[28 + i] == kHostIp[i];
    PostNetRx(buffer);
    if (reply) return true;
  }
  return false;
}

void NetRound() {
  for (int attempt = 0; attempt < 10; ++attempt) {
    Transfer(net, kNetTx, rt::virtio::Out(arp, sizeof(arp)));
    if (NetReply(1000)) return;
  }
  rt::Fail(kName, 5, "net: no ARP reply from the host");
}

// ---- virtio-balloon (5.5): follow num_pages. ----

constexpr uint32_t kDeviceBalloon = 5;
constexpr int kInflate = 0, kDeflate = 1;
constexpr uint64_t kBalloonBase = 64ull << 20;
constexpr uint32_t kBalloonMaxPages = 32768;  // 128 MiB above kBalloonBase
constexpr uint32_t kPfnsPerChain = 256;

Device balloon;
uint32_t actual;
uint32_t pfns[kPfnsPerChain];

// Sends PFNs [from, to) of the balloon region on `q`.
void SendPfns(int q, uint32_t from, uint32_t to) {
  while (from < to) {
    uint32_t n = to - from < kPfnsPerChain ? to - from : kPfnsPerChain;
    for (uint32_t i = 0; i < n; ++i) pfns[i] = static_cast<uint32_t>(kBalloonBase >> 12) + from + i;
    Transfer(balloon, q, rt::virtio::Out(pfns, n * 4));
    from += n;
  }
}

void BalloonRound() {
  uint32_t target = balloon.Config32(0);
  if (target > kBalloonMaxPages) target = kBalloonMaxPages;
  if (target > actual) SendPfns(kInflate, actual, target);
  if (target < actual) SendPfns(kDeflate, target, actual);
  if (target != actual) {
    actual = target;
    balloon.transport().SetConfig32(4, actual);
    rt::Printf("balloon now %u pages\n", actual);
  }
}

// ---- virtio-vsock (5.10): a connection per round, and the transport reset. ----

constexpr uint32_t kDeviceVsock = 19;
constexpr uint64_t kVsockFStream = 1ull << 0;
constexpr int kVsockRx = 0, kVsockTx = 1, kVsockEvent = 2;
constexpr uint64_t kHostCid = 2;
constexpr uint16_t kTypeStream = 1;
enum Op : uint16_t { kRequest = 1, kResponse = 2, kRst = 3, kShutdown = 4, kRw = 5 };
constexpr uint16_t kCreditUpdate = 6, kCreditRequest = 7;
constexpr uint32_t kBufAlloc = 64 * 1024;

struct [[gnu::packed]] Header {
  uint64_t src_cid, dst_cid;
  uint32_t src_port, dst_port, len;
  uint16_t type, op;
  uint32_t flags, buf_alloc, fwd_cnt;
};
static_assert(sizeof(Header) == 44);

constexpr int kVsockRxBuffers = 8;
constexpr uint32_t kVsockRxBytes = 512;

// The event queue: four 8-byte buffers on a ring of this file's own (the runtime's Device
// sets up two queues).
constexpr uint16_t kEventRing = 4;
struct alignas(16) EventRing {
  rt::virtio::Desc desc[kEventRing];
  struct {
    uint16_t flags, idx;
    uint16_t ring[kEventRing];
  } avail;
  struct alignas(4) {
    uint16_t flags, idx;
    struct {
      uint32_t id, len;
    } ring[kEventRing];
  } used;
};

Device vsock;
rt::virtio::Transport event_transport;
EventRing event_ring;
bool event_ready;
uint16_t event_seen;
uint32_t events[kEventRing][2];
uint64_t guest_cid;
uint32_t host_port;
uint32_t next_port = 49152;
alignas(16) uint8_t vsock_rx[kVsockRxBuffers][kVsockRxBytes];
int vsock_owner[rt::virtio::Queue::kMaxSize];
struct [[gnu::packed]] {
  Header hdr;
  char data[32];
} vtx;
Header rx_hdr;
char rx_data[kVsockRxBytes];

void PostEvent(uint16_t i) {
  event_ring.desc[i] = {reinterpret_cast<uint64_t>(&events[i]), sizeof(events[i]), 2 /*WRITE*/, 0};
  volatile auto& avail = event_ring.avail;
  avail.ring[avail.idx % kEventRing] = i;
  asm volatile("" ::: "memory");  // x86 keeps stores in order; the compiler must too
  avail.idx = static_cast<uint16_t>(avail.idx + 1);
  event_transport.Notify(kVsockEvent);
}

void SetUpEventQueue(Device& d) {
  if (!event_transport.Open(d.transport().location())) return;
  if (event_transport.QueueMax(kVsockEvent) < kEventRing) return;
  event_ready = event_transport.SetUpQueue(
      kVsockEvent, kEventRing, reinterpret_cast<uint64_t>(&event_ring.desc),
      reinterpret_cast<uint64_t>(&event_ring.avail), reinterpret_cast<uint64_t>(&event_ring.used));
}

// Takes the device's events; true if one was a transport reset (5.10.6.6).
bool TransportReset() {
  bool reset = false;
  volatile auto& used = event_ring.used;
  while (event_ready && event_seen != used.idx) {
    const uint32_t id = used.ring[event_seen % kEventRing].id;
    event_seen = static_cast<uint16_t>(event_seen + 1);
    if (id >= kEventRing) continue;
    if (events[id][0] == 0) reset = true;  // VIRTIO_VSOCK_EVENT_TRANSPORT_RESET
    PostEvent(static_cast<uint16_t>(id));
  }
  if (reset) {
    guest_cid = vsock.Config64(0);  // 5.10.6.6: the driver re-reads it
    rt::Printf("vsock transport reset (guest cid %lu)\n", guest_cid);
  }
  return reset;
}

void PostVsockRx(int buffer) {
  Buffer b = rt::virtio::In(vsock_rx[buffer], kVsockRxBytes);
  rt::virtio::Queue& q = vsock.queue(kVsockRx);
  uint16_t old = q.avail_idx();
  vsock_owner[q.Post(&b, 1, false)] = buffer;
  vsock.Notify(kVsockRx, old);
}

void SetUpVsock() {
  guest_cid = vsock.Config64(0);
  for (int i = 0; i < kVsockRxBuffers; ++i) PostVsockRx(i);
  for (uint16_t i = 0; i < kEventRing; ++i) PostEvent(i);
}

struct Conn {
  uint32_t port;
  uint32_t fwd_cnt;
};

void VsockSend(const Conn& c, uint16_t op, const char* data = nullptr, uint32_t len = 0,
               uint32_t flags = 0) {
  vtx.hdr = {guest_cid,   kHostCid, c.port, host_port, len,
             kTypeStream, op,       flags,  kBufAlloc, c.fwd_cnt};
  for (uint32_t i = 0; i < len && i < sizeof(vtx.data); ++i) vtx.data[i] = data[i];
  Transfer(vsock, kVsockTx, rt::virtio::Out(&vtx, static_cast<uint32_t>(sizeof(Header) + len)));
}

enum class Got { kPacket, kTimeout, kReset };

// The next packet for `c` within `ms` (others are skipped), or a transport reset.
Got VsockReceive(const Conn& c, uint32_t ms) {
  rt::Deadline deadline = rt::Deadline::InMs(ms);
  rt::virtio::Queue& q = vsock.queue(kVsockRx);
  while (!deadline.Expired()) {
    if (TransportReset()) return Got::kReset;
    rt::virtio::Queue::UsedElem e;
    if (!q.PopUsed(e)) {
      rt::Pause();
      continue;
    }
    if (e.id >= rt::virtio::Queue::kMaxSize) rt::Fail(kName, 4, "vsock: used id out of range");
    const int buffer = vsock_owner[e.id];
    const uint8_t* src = vsock_rx[buffer];
    bool ok = e.len >= sizeof(Header);
    if (ok) {
      auto* dst = reinterpret_cast<uint8_t*>(&rx_hdr);
      for (uint32_t i = 0; i < sizeof(Header); ++i) dst[i] = src[i];
      ok = rx_hdr.len <= e.len - sizeof(Header) && rx_hdr.dst_port == c.port &&
           rx_hdr.src_port == host_port;
      for (uint32_t i = 0; ok && i < rx_hdr.len; ++i) rx_data[i] = static_cast<char>(src[44 + i]);
    }
    PostVsockRx(buffer);
    if (ok) return Got::kPacket;
  }
  return Got::kTimeout;
}

// One connection: request, "round N" both ways, shutdown. False if it failed (and why).
bool VsockConnection(uint64_t round) {
  Conn c{next_port++, 0};
  if (next_port == 65000) next_port = 49152;
  VsockSend(c, kRequest);
  Got got;
  while ((got = VsockReceive(c, 3000)) == Got::kPacket && rx_hdr.op == kCreditUpdate) {
  }
  if (got != Got::kPacket || rx_hdr.op != kResponse) {
    if (got == Got::kPacket) rt::Printf("vsock: op %u instead of a response\n", rx_hdr.op);
    return false;
  }
  char text[24] = "round ";
  int len = 6;
  char digits[20];
  int nd = 0;
  do digits[nd++] = static_cast<char>('0' + round % 10), round /= 10;
  while (round != 0);
  while (nd > 0) text[len++] = digits[--nd];
  VsockSend(c, kRw, text, static_cast<uint32_t>(len));
  int echoed = 0;
  while (echoed < len) {
    got = VsockReceive(c, 3000);
    if (got != Got::kPacket) return false;
    if (rx_hdr.op == kCreditRequest) {
      VsockSend(c, kCreditUpdate);
      continue;
    }
    if (rx_hdr.op == kCreditUpdate) continue;
    if (rx_hdr.op != kRw) {
      rt::Printf("vsock: op %u while reading\n", rx_hdr.op);
      return false;
    }
    for (uint32_t i = 0; i < rx_hdr.len && echoed < len; ++i) {
      if (rx_data[i] != text[echoed++]) return false;
    }
    c.fwd_cnt += rx_hdr.len;
  }
  VsockSend(c, kShutdown, nullptr, 0, 3);
  while ((got = VsockReceive(c, 2000)) == Got::kPacket && rx_hdr.op != kRst) {
  }
  return true;
}

void VsockRound(uint64_t round) {
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (VsockConnection(round)) return;
  }
  rt::Fail(kName, 7, "vsock: no echo from the host");
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  host_port = NumberArg(info, "vsock.host_port", 5000);
  Device::Options options = {};
  options.wanted_features = kNetFMac;
  options.queues = 2;
  const bool has_net = Init(net, info, kDeviceNet, options);
  options = {};
  options.queues = 2;
  const bool has_balloon = Init(balloon, info, kDeviceBalloon, options);
  options = {};
  options.wanted_features = kVsockFStream;
  options.queues = 2;
  options.before_driver_ok = SetUpEventQueue;
  const bool has_vsock = Init(vsock, info, kDeviceVsock, options);
  if (!has_net && !has_balloon && !has_vsock) rt::Fail(kName, 3, "no net, balloon or vsock");
  if (has_vsock && !event_ready) rt::Fail(kName, 4, "vsock: no event queue");
  if (has_net) SetUpNet();
  if (has_vsock) SetUpVsock();
  rt::Printf("ready: net %d balloon %d vsock %d\n", has_net, has_balloon, has_vsock);

  const uint64_t wait = 20 * rt::TscPerMs();
  for (uint64_t round = 1; round <= kMaxRounds; ++round) {
    if (has_net) NetRound();
    if (has_balloon) BalloonRound();
    if (has_vsock) VsockRound(round);
    rt::Printf("round %lu net %s balloon %u vsock %s\n", round, has_net ? "ok" : "-", actual,
               has_vsock ? "ok" : "-");
    const uint64_t until = rt::Rdtsc() + wait;
    while (rt::Rdtsc() < until) rt::Pause();
  }
  rt::Fail(kName, 8, "still running after kMaxRounds");
}
