// virtio_net: the network device (virtio 1.2 section 5.1) over virtio-mmio or virtio-pci (chosen
// as runtime/virtio_transport.h says). Finds device id 1, negotiates VIRTIO_NET_F_MAC and
// VIRTIO_NET_F_MRG_RXBUF (no offloads), reads its MAC from config space, posts receive buffers on
// receiveq1 (queue 0), and on transmitq1 (queue 1) sends an ARP request for the host's address,
// then an ICMP echo request to it; every frame carries the 12-byte virtio_net_hdr_v1 (5.1.6).
// Checksums (IPv4 header, ICMP) are computed here. The queues are polled.
//
// The host side (tests/integration/virtio_net_test.sh) gives the tap its address only after the
// VMM has created it, so the ARP request is repeated every 200 ms for up to vnet.tries times.
// Frames the guest did not ask for (IPv6 router solicitations, ...) are skipped; an ARP request
// for the guest's own address is answered, so the host can check its neighbour entry.
//
// Cmdline: vnet.ip=A.B.C.D (the guest's address, default 10.0.2.15), vnet.host=A.B.C.D (default
// 10.0.2.1), vnet.tries=N (ARP attempts, default 50).
//
// Prints "mac: xx:xx:xx:xx:xx:xx", "arp reply from <mac>", "icmp echo reply from <ip> seq N".
// Exit: debug-exit 0 (status 1) after "PASS virtio_net". Failures (debug-exit value -> status):
//   3 -> 7   no network device               7 -> 15  no ARP reply
//   4 -> 9   initialisation failed           8 -> 17  no (or a wrong) ICMP echo reply
//   5 -> 11  VIRTIO_NET_F_MAC not negotiated  9 -> 19  bad vnet.ip / vnet.host
//   6 -> 13  a transmit did not complete
#include "runtime.h"
#include "virtio.h"

namespace {

using rt::virtio::Buffer;
using rt::virtio::Device;
using rt::virtio::Error;

constexpr const char* kName = "virtio_net";

// 5.1.3 feature bits.
constexpr uint64_t kNetFMac = 1ull << 5;
constexpr uint64_t kNetFMrgRxbuf = 1ull << 15;
constexpr int kRxQueue = 0;
constexpr int kTxQueue = 1;

// struct virtio_net_hdr_v1 (5.1.6).
struct NetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(NetHdr) == 12);

constexpr int kRxBuffers = 8;
constexpr uint32_t kRxBufferBytes = 2048;  // a whole 1514-byte frame plus the header
constexpr int kFrameMax = 1514;
constexpr uint16_t kEthArp = 0x0806;
constexpr uint16_t kEthIpv4 = 0x0800;
constexpr int kEthHdr = 14;

alignas(16) uint8_t rx_buffers[kRxBuffers][kRxBufferBytes];
int rx_owner[rt::virtio::Queue::kMaxSize];  // descriptor head -> rx buffer index
NetHdr tx_hdr;
alignas(16) uint8_t tx_frame[kFrameMax];
Device net;
uint8_t my_mac[6];
uint8_t host_mac[6];
uint8_t my_ip[4];
uint8_t host_ip[4];

uint16_t Be16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Copy(uint8_t* dst, const uint8_t* src, int n) {
  for (int i = 0; i < n; ++i) dst[i] = src[i];
}
bool Equal(const uint8_t* a, const uint8_t* b, int n) {
  for (int i = 0; i < n; ++i) {
    if (a[i] != b[i]) return false;
  }
  return true;
}

// RFC 1071 Internet checksum.
uint16_t Checksum(const uint8_t* p, int n) {
  uint32_t sum = 0;
  for (int i = 0; i + 1 < n; i += 2) sum += Be16(p + i);
  if (n & 1) sum += static_cast<uint32_t>(p[n - 1]) << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}

// "A.B.C.D" -> out; false if malformed.
bool ParseIp(const char* s, uint8_t* out) {
  for (int part = 0; part < 4; ++part) {
    uint32_t v = 0;
    int digits = 0;
    while (*s >= '0' && *s <= '9' && digits < 4)
      v = v * 10 + static_cast<uint32_t>(*s++ - '0'), ++digits;
    if (digits == 0 || v > 255) return false;
    out[part] = static_cast<uint8_t>(v);
    if (part < 3 && *s++ != '.') return false;
  }
  return *s == 0;
}

void IpArg(const rt::BootInfo& info, const char* key, const char* fallback, uint8_t* out) {
  char v[20];
  const char* s = rt::CmdlineValue(info, key, v, sizeof(v)) ? v : fallback;
  if (!ParseIp(s, out)) rt::Fail(kName, 9, "bad IPv4 address on the cmdline");
}

void PostRx(int buffer) {
  Buffer b = rt::virtio::In(rx_buffers[buffer], kRxBufferBytes);
  rt::virtio::Queue& q = net.queue(kRxQueue);
  uint16_t old = q.avail_idx();
  int head = q.Post(&b, 1, false);
  rx_owner[head] = buffer;
  net.Notify(kRxQueue, old);
}

// Sends tx_frame[0..len) (padded to the 60-byte Ethernet minimum) behind a zero header.
void Send(int len) {
  for (; len < 60; ++len) tx_frame[len] = 0;
  tx_hdr = {};
  Buffer bufs[2] = {rt::virtio::Out(&tx_hdr, sizeof(tx_hdr)), rt::virtio::Out(tx_frame, len)};
  Error e = net.Transfer(kTxQueue, bufs, 2);
  if (e != Error::kOk) {
    rt::Printf("transmit: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 6, "a transmit did not complete");
  }
}

int EthHeader(const uint8_t* dst, uint16_t type) {
  Copy(tx_frame, dst, 6);
  Copy(tx_frame + 6, my_mac, 6);
  PutBe16(tx_frame + 12, type);
  return kEthHdr;
}

// ARP (RFC 826) for IPv4 over Ethernet: op 1 request, 2 reply.
void SendArp(uint16_t op, const uint8_t* dst_mac, const uint8_t* target_mac,
             const uint8_t* target_ip) {
  int n = EthHeader(dst_mac, kEthArp);
  uint8_t* a = tx_frame + n;
  PutBe16(a, 1);  // htype Ethernet
  PutBe16(a + 2, kEthIpv4);
  a[4] = 6;
  a[5] = 4;
  PutBe16(a + 6, op);
  Copy(a + 8, my_mac, 6);
  Copy(a + 14, my_ip, 4);
  Copy(a + 18, target_mac, 6);
  Copy(a + 24, target_ip, 4);
  Send(n + 28);
}

constexpr int kPingPayload = 32;
constexpr uint16_t kPingId = 0x7652;

void SendPing(uint16_t seq) {
  int n = EthHeader(host_mac, kEthIpv4);
  uint8_t* ip = tx_frame + n;
  int total = 20 + 8 + kPingPayload;
  ip[0] = 0x45;
  ip[1] = 0;
  PutBe16(ip + 2, static_cast<uint16_t>(total));
  PutBe16(ip + 4, seq);
  PutBe16(ip + 6, 0x4000);  // DF
  ip[8] = 64;
  ip[9] = 1;  // ICMP
  PutBe16(ip + 10, 0);
  Copy(ip + 12, my_ip, 4);
  Copy(ip + 16, host_ip, 4);
  PutBe16(ip + 10, Checksum(ip, 20));
  uint8_t* icmp = ip + 20;
  icmp[0] = 8;  // echo request
  icmp[1] = 0;
  PutBe16(icmp + 2, 0);
  PutBe16(icmp + 4, kPingId);
  PutBe16(icmp + 6, seq);
  for (int i = 0; i < kPingPayload; ++i) icmp[8 + i] = static_cast<uint8_t>('a' + i % 26);
  PutBe16(icmp + 2, Checksum(icmp, 8 + kPingPayload));
  Send(n + total);
}

enum class Got { kNothing, kArpReply, kEchoReply };

// Looks at one received frame; answers ARP requests for our address.
Got Handle(const uint8_t* f, uint32_t len, uint16_t seq) {
  if (len < kEthHdr + 28) return Got::kNothing;
  uint16_t type = Be16(f + 12);
  const uint8_t* p = f + kEthHdr;
  if (type == kEthArp && Be16(p) == 1 && Be16(p + 2) == kEthIpv4 && p[4] == 6 && p[5] == 4) {
    uint16_t op = Be16(p + 6);
    if (op == 2 && Equal(p + 14, host_ip, 4) && Equal(p + 24, my_ip, 4)) {
      Copy(host_mac, p + 8, 6);
      return Got::kArpReply;
    }
    if (op == 1 && Equal(p + 24, my_ip, 4)) SendArp(2, p + 8, p + 8, p + 14);
    return Got::kNothing;
  }
  if (type != kEthIpv4 || (p[0] >> 4) != 4) return Got::kNothing;
  int ihl = (p[0] & 0xf) * 4;
  uint32_t total = Be16(p + 2);
  if (ihl < 20 || total < static_cast<uint32_t>(ihl) + 8 || kEthHdr + total > len) {
    return Got::kNothing;
  }
  if (p[9] != 1 || !Equal(p + 12, host_ip, 4) || !Equal(p + 16, my_ip, 4)) return Got::kNothing;
  if (Checksum(p, ihl) != 0) {
    rt::Printf("ip header checksum wrong\n");
    return Got::kNothing;
  }
  const uint8_t* icmp = p + ihl;
  int icmp_len = static_cast<int>(total) - ihl;
  if (icmp[0] != 0 || Be16(icmp + 4) != kPingId || Be16(icmp + 6) != seq) return Got::kNothing;
  if (Checksum(icmp, icmp_len) != 0) rt::Fail(kName, 8, "echo reply checksum wrong");
  if (icmp_len != 8 + kPingPayload) rt::Fail(kName, 8, "echo reply of the wrong length");
  for (int i = 0; i < kPingPayload; ++i) {
    if (icmp[8 + i] != 'a' + i % 26) rt::Fail(kName, 8, "echo reply payload differs");
  }
  return Got::kEchoReply;
}

// Polls the receive queue until `want` arrives or `ms` pass; each buffer is posted again.
bool Receive(Got want, uint16_t seq, uint32_t ms) {
  rt::Deadline deadline = rt::Deadline::InMs(ms);
  rt::virtio::Queue& q = net.queue(kRxQueue);
  while (!deadline.Expired()) {
    rt::virtio::Queue::UsedElem e;
    if (!q.PopUsed(e)) {
      rt::Pause();
      continue;
    }
    if (e.id >= rt::virtio::Queue::kMaxSize) rt::Fail(kName, 4, "used id out of range");
    int buffer = rx_owner[e.id];
    const uint8_t* data = rx_buffers[buffer];
    const auto* hdr = reinterpret_cast<const NetHdr*>(data);
    Got got = Got::kNothing;
    if (e.len > sizeof(NetHdr) && e.len <= kRxBufferBytes && hdr->num_buffers == 1) {
      got = Handle(data + sizeof(NetHdr), e.len - sizeof(NetHdr), seq);
    } else {
      rt::Printf("rx: skipped a %u-byte buffer (num_buffers %u)\n", e.len, hdr->num_buffers);
    }
    PostRx(buffer);
    if (got == want) return true;
  }
  return false;
}

void PrintMac(const char* what, const uint8_t* m) {
  rt::Printf("%s%02x:%02x:%02x:%02x:%02x:%02x\n", what, m[0], m[1], m[2], m[3], m[4], m[5]);
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  IpArg(info, "vnet.ip", "10.0.2.15", my_ip);
  IpArg(info, "vnet.host", "10.0.2.1", host_ip);
  int tries = 50;
  char v[8];
  if (rt::CmdlineValue(info, "vnet.tries", v, sizeof(v))) {
    tries = 0;
    for (int i = 0; v[i] >= '0' && v[i] <= '9'; ++i) tries = tries * 10 + (v[i] - '0');
    if (tries <= 0) tries = 1;
  }

  rt::virtio::Location where;
  if (!rt::virtio::FindDevice(info, rt::virtio::kDeviceNet, where)) {
    rt::Fail(kName, 3, "no virtio network device");
  }
  Device::Options options = {};
  options.wanted_features = kNetFMac | kNetFMrgRxbuf;
  options.queues = 2;
  options.mode = rt::virtio::WaitMode::kPoll;
  Error e = net.Init(where, options);
  if (e != Error::kOk) {
    rt::Printf("init: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 4, "initialisation failed");
  }
  rt::Printf("virtio-net features: offered %#lx accepted %#lx\n", net.offered_features(),
             net.features());
  if (!net.Has(kNetFMac)) rt::Fail(kName, 5, "VIRTIO_NET_F_MAC not negotiated");
  if (!net.Has(kNetFMrgRxbuf)) rt::Printf("note: MRG_RXBUF not offered\n");
  for (int i = 0; i < 6; ++i) my_mac[i] = net.Config8(static_cast<uint32_t>(i));
  PrintMac("mac: ", my_mac);
  for (int i = 0; i < kRxBuffers; ++i) PostRx(i);

  static const uint8_t kBroadcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
  static const uint8_t kZero[6] = {};
  bool resolved = false;
  int attempt = 0;
  while (!resolved && attempt < tries) {
    ++attempt;
    SendArp(1, kBroadcast, kZero, host_ip);
    resolved = Receive(Got::kArpReply, 0, 200);
  }
  if (!resolved) rt::Fail(kName, 7, "no ARP reply");
  rt::Printf("arp attempts: %d\n", attempt);
  PrintMac("arp reply from ", host_mac);

  bool echoed = false;
  uint16_t seq = 1;
  for (; seq <= 5 && !echoed; ++seq) {
    SendPing(seq);
    echoed = Receive(Got::kEchoReply, seq, 1000);
    if (echoed) {
      rt::Printf("icmp echo reply from %u.%u.%u.%u seq %u\n", host_ip[0], host_ip[1], host_ip[2],
                 host_ip[3], seq);
    }
  }
  if (!echoed) rt::Fail(kName, 8, "no ICMP echo reply");
  rt::Pass(kName);
}
