// virtio_vsock: the socket device (virtio 1.2 section 5.10) over virtio-mmio or virtio-pci (chosen
// as runtime/virtio_transport.h says). Finds device id 19, negotiates VIRTIO_VSOCK_F_STREAM, reads
// guest_cid from config space (5.10.4), sets up rx (queue 0) and tx (queue 1) (the event queue is
// left unused: the device sends no events), posts receive buffers and polls the queues.
//
// (a) Host-initiated: waits for an OP_REQUEST to vsock.port (the host wrote "CONNECT <port>" to
//     the VMM's socket), answers OP_RESPONSE, receives "ping" and sends "pong".
// (b) Guest-initiated: connects to host port vsock.host_port (the VMM forwards it to the socket
//     PATH_<port>), waits for OP_RESPONSE, sends "hello host", receives "hello guest", then
//     sends SHUTDOWN (both directions) and waits briefly for the device's RST.
// Every packet is the 44-byte struct virtio_vsock_hdr (5.10.6) and its payload; credit (5.10.6.3)
// is advertised as buf_alloc 64 KiB with fwd_cnt the bytes consumed. A SHUTDOWN from the host is
// answered with RST, a CREDIT_REQUEST with a CREDIT_UPDATE.
//
// Cmdline: vsock.port=N (default 1234), vsock.host_port=N (default 5000).
//
// Prints "guest cid: N", "accepted host port H on port N", "received: ping", "connected to host
// port P", "received: hello guest". Exit: debug-exit 0 (status 1) after "PASS virtio_vsock".
// Failures (debug-exit value -> status):
//   3 -> 7   no socket device                 7 -> 15  no "ping" (or other bytes)
//   4 -> 9   initialisation failed            8 -> 17  connecting to the host failed (RST/none)
//   5 -> 11  a transmit did not complete      9 -> 19  no "hello guest" (or other bytes)
//   6 -> 13  no OP_REQUEST from the host     10 -> 21  bad guest_cid
#include "runtime.h"
#include "virtio.h"

namespace {

using rt::virtio::Buffer;
using rt::virtio::Device;
using rt::virtio::Error;

constexpr const char* kName = "virtio_vsock";
constexpr uint32_t kDeviceVsock = 19;
constexpr uint64_t kVsockFStream = 1ull << 0;
constexpr int kRxQueue = 0;
constexpr int kTxQueue = 1;
constexpr uint64_t kHostCid = 2;

// struct virtio_vsock_hdr (5.10.6), little-endian, packed.
struct [[gnu::packed]] Header {
  uint64_t src_cid;
  uint64_t dst_cid;
  uint32_t src_port;
  uint32_t dst_port;
  uint32_t len;
  uint16_t type;
  uint16_t op;
  uint32_t flags;
  uint32_t buf_alloc;
  uint32_t fwd_cnt;
};
static_assert(sizeof(Header) == 44);

constexpr uint16_t kTypeStream = 1;
enum Op : uint16_t {
  kOpRequest = 1,
  kOpResponse = 2,
  kOpRst = 3,
  kOpShutdown = 4,
  kOpRw = 5,
  kOpCreditUpdate = 6,
  kOpCreditRequest = 7,
};
constexpr uint32_t kShutdownBoth = 3;
constexpr uint32_t kBufAlloc = 64 * 1024;

constexpr int kRxBuffers = 8;
constexpr uint32_t kRxBufferBytes = 1024;
constexpr uint32_t kMaxPayload = kRxBufferBytes - sizeof(Header);

alignas(16) uint8_t rx_buffers[kRxBuffers][kRxBufferBytes];
int rx_owner[rt::virtio::Queue::kMaxSize];  // descriptor head -> rx buffer index
struct [[gnu::packed]] TxPacket {
  Header hdr;
  uint8_t data[64];
};
TxPacket tx;
Device vsock;
uint64_t guest_cid;

// One connection's ports and the bytes it has consumed (fwd_cnt).
struct Conn {
  uint32_t local_port;
  uint32_t peer_port;
  uint32_t fwd_cnt;
};

// A received packet, copied out of its rx buffer.
Header rx_hdr;
uint8_t rx_data[kMaxPayload];

uint32_t NumberArg(const rt::BootInfo& info, const char* key, uint32_t fallback) {
  char v[12];
  if (!rt::CmdlineValue(info, key, v, sizeof(v))) return fallback;
  uint32_t n = 0;
  for (int i = 0; v[i] >= '0' && v[i] <= '9'; ++i) n = n * 10 + static_cast<uint32_t>(v[i] - '0');
  return n;
}

void PostRx(int buffer) {
  Buffer b = rt::virtio::In(rx_buffers[buffer], kRxBufferBytes);
  rt::virtio::Queue& q = vsock.queue(kRxQueue);
  uint16_t old = q.avail_idx();
  int head = q.Post(&b, 1, false);
  rx_owner[head] = buffer;
  vsock.Notify(kRxQueue, old);
}

void Send(const Conn& c, uint16_t op, const char* data = nullptr, uint32_t len = 0,
          uint32_t flags = 0) {
  tx.hdr = {guest_cid,   kHostCid, c.local_port, c.peer_port, len,
            kTypeStream, op,       flags,        kBufAlloc,   c.fwd_cnt};
  for (uint32_t i = 0; i < len && i < sizeof(tx.data); ++i)
    tx.data[i] = static_cast<uint8_t>(data[i]);
  Buffer b = rt::virtio::Out(&tx, static_cast<uint32_t>(sizeof(Header) + len));
  Error e = vsock.Transfer(kTxQueue, &b, 1);
  if (e != Error::kOk) {
    rt::Printf("transmit: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 5, "a transmit did not complete");
  }
}

// Takes the next received packet into rx_hdr/rx_data within `ms`; false on timeout.
bool ReceiveAny(uint32_t ms) {
  rt::Deadline deadline = rt::Deadline::InMs(ms);
  rt::virtio::Queue& q = vsock.queue(kRxQueue);
  while (!deadline.Expired()) {
    rt::virtio::Queue::UsedElem e;
    if (!q.PopUsed(e)) {
      rt::Pause();
      continue;
    }
    if (e.id >= rt::virtio::Queue::kMaxSize) rt::Fail(kName, 4, "used id out of range");
    int buffer = rx_owner[e.id];
    bool ok = e.len >= sizeof(Header) && e.len <= kRxBufferBytes;
    if (ok) {
      const uint8_t* src = rx_buffers[buffer];
      auto* dst = reinterpret_cast<uint8_t*>(&rx_hdr);
      for (uint32_t i = 0; i < sizeof(Header); ++i) dst[i] = src[i];
      ok = rx_hdr.len <= e.len - sizeof(Header);
      for (uint32_t i = 0; ok && i < rx_hdr.len; ++i) rx_data[i] = src[sizeof(Header) + i];
    }
    PostRx(buffer);
    if (ok) return true;
    rt::Printf("rx: skipped a malformed %u-byte packet\n", e.len);
  }
  return false;
}

// Whether the received packet belongs to `c`.
bool For(const Conn& c) {
  return rx_hdr.src_cid == kHostCid && rx_hdr.dst_cid == guest_cid &&
         rx_hdr.dst_port == c.local_port && rx_hdr.src_port == c.peer_port;
}

// Answers what needs an answer on connections other than the one being waited for: SHUTDOWN
// with RST, CREDIT_REQUEST with CREDIT_UPDATE. Prints anything else.
void HandleOther(Conn* known, int n) {
  for (int i = 0; i < n; ++i) {
    Conn& c = known[i];
    if (!For(c)) continue;
    if (rx_hdr.op == kOpShutdown) {
      rt::Printf("host shut down port %u\n", c.local_port);
      Send(c, kOpRst);
    } else if (rx_hdr.op == kOpCreditRequest) {
      Send(c, kOpCreditUpdate);
    } else if (rx_hdr.op == kOpRw) {
      c.fwd_cnt += rx_hdr.len;
    }
    return;
  }
  rt::Printf("rx: op %u %u -> %u skipped\n", rx_hdr.op, rx_hdr.src_port, rx_hdr.dst_port);
}

// Receives `want_len` stream bytes on `c` into out; false on timeout, RST or SHUTDOWN.
bool ReadBytes(Conn& c, char* out, uint32_t want_len, uint32_t ms, Conn* others, int n_others) {
  uint32_t got = 0;
  rt::Deadline deadline = rt::Deadline::InMs(ms);
  while (got < want_len && !deadline.Expired()) {
    if (!ReceiveAny(100)) continue;
    if (!For(c)) {
      HandleOther(others, n_others);
      continue;
    }
    if (rx_hdr.op == kOpCreditRequest) {
      Send(c, kOpCreditUpdate);
      continue;
    }
    if (rx_hdr.op == kOpCreditUpdate) continue;
    if (rx_hdr.op != kOpRw) {
      rt::Printf("port %u: op %u while reading\n", c.local_port, rx_hdr.op);
      return false;
    }
    for (uint32_t i = 0; i < rx_hdr.len && got < want_len; ++i)
      out[got++] = static_cast<char>(rx_data[i]);
    c.fwd_cnt += rx_hdr.len;
  }
  out[got] = 0;
  return got == want_len;
}

bool SameText(const char* a, const char* b) {
  for (int i = 0;; ++i) {
    if (a[i] != b[i]) return false;
    if (!a[i]) return true;
  }
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  uint32_t listen_port = NumberArg(info, "vsock.port", 1234);
  uint32_t host_port = NumberArg(info, "vsock.host_port", 5000);

  rt::virtio::Location where;
  if (!rt::virtio::FindDevice(info, kDeviceVsock, where)) {
    rt::Fail(kName, 3, "no virtio socket device");
  }
  Device::Options options = {};
  options.wanted_features = kVsockFStream;
  options.queues = 2;
  options.mode = rt::virtio::WaitMode::kPoll;
  Error e = vsock.Init(where, options);
  if (e != Error::kOk) {
    rt::Printf("init: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 4, "initialisation failed");
  }
  rt::Printf("virtio-vsock features: offered %#lx accepted %#lx\n", vsock.offered_features(),
             vsock.features());
  guest_cid = vsock.Config64(0);
  rt::Printf("guest cid: %lu\n", guest_cid);
  if (guest_cid < 3 || guest_cid >= 0xffffffffull) rt::Fail(kName, 10, "bad guest_cid");
  for (int i = 0; i < kRxBuffers; ++i) PostRx(i);

  // (a) The host connects to listen_port.
  Conn conns[2] = {};
  Conn& a = conns[0];
  a.local_port = listen_port;
  bool requested = false;
  rt::Deadline deadline = rt::Deadline::InMs(30000);
  while (!requested && !deadline.Expired()) {
    if (!ReceiveAny(100)) continue;
    if (rx_hdr.op == kOpRequest && rx_hdr.src_cid == kHostCid && rx_hdr.dst_port == listen_port) {
      requested = true;
      a.peer_port = rx_hdr.src_port;
    } else {
      rt::Printf("rx: op %u %u -> %u before the request\n", rx_hdr.op, rx_hdr.src_port,
                 rx_hdr.dst_port);
    }
  }
  if (!requested) rt::Fail(kName, 6, "no OP_REQUEST from the host");
  Send(a, kOpResponse);
  rt::Printf("accepted host port %u on port %u\n", a.peer_port, a.local_port);
  char text[32];
  if (!ReadBytes(a, text, 4, 10000, conns, 1) || !SameText(text, "ping")) {
    rt::Printf("received: %s\n", text);
    rt::Fail(kName, 7, "no \"ping\" from the host");
  }
  rt::Printf("received: %s\n", text);
  Send(a, kOpRw, "pong", 4);

  // (b) The guest connects to host_port.
  Conn& b = conns[1];
  b.local_port = 49152;
  b.peer_port = host_port;
  Send(b, kOpRequest);
  bool connected = false;
  deadline = rt::Deadline::InMs(10000);
  while (!connected && !deadline.Expired()) {
    if (!ReceiveAny(100)) continue;
    if (!For(b)) {
      HandleOther(conns, 1);
      continue;
    }
    if (rx_hdr.op == kOpRst) rt::Fail(kName, 8, "the host refused the connection (RST)");
    if (rx_hdr.op == kOpResponse) connected = true;
  }
  if (!connected) rt::Fail(kName, 8, "no OP_RESPONSE from the host");
  rt::Printf("connected to host port %u\n", host_port);
  Send(b, kOpRw, "hello host", 10);
  if (!ReadBytes(b, text, 11, 10000, conns, 1) || !SameText(text, "hello guest")) {
    rt::Printf("received: %s\n", text);
    rt::Fail(kName, 9, "no \"hello guest\" from the host");
  }
  rt::Printf("received: %s\n", text);
  Send(b, kOpShutdown, nullptr, 0, kShutdownBoth);
  bool reset = false;
  deadline = rt::Deadline::InMs(2000);
  while (!reset && !deadline.Expired()) {
    if (!ReceiveAny(100)) continue;
    if (For(b) && rx_hdr.op == kOpRst) {
      reset = true;
    } else if (!For(b)) {
      HandleOther(conns, 1);
    }
  }
  rt::Printf("port %u closed: %s\n", b.local_port, reset ? "RST" : "no RST within 2 s");
  rt::Pass(kName);
}
