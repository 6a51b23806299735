// Test fixture for the vsock device: a Vsock on a real EventLoop, three queues over a test
// GuestMemory, and a minimal guest vsock driver (posts rx buffers, sends packets, reads
// replies) plus host-side socket helpers. Tests only.
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "virtio/testing/driver.h"
#include "virtio/vsock/vsock.h"

namespace vireo::virtio::vsock::testing {

using virtio::testing::TestBuffer;
using virtio::testing::TestDriver;

inline constexpr uint64_t kCid = 3;
inline constexpr uint32_t kGuestBufAlloc = 64 * 1024;
inline constexpr GuestAddress kRxBase = 0x40000;  // 64 rx buffers of kRxBufSize, 0x1100 apart
inline constexpr uint32_t kRxBufSize = sizeof(Header) + 4096;
inline constexpr uint32_t kRxBuffers = 64;
inline constexpr GuestAddress kTxBase = virtio::testing::kRegion1Base;  // 16 slots of 64 KiB
inline constexpr uint32_t kTxSlots = 16;
inline constexpr uint32_t kTxSlotSize = 0x10000;

class CountingInterrupt : public QueueInterrupt {
 public:
  void SignalUsed(uint16_t queue_index) override { used[queue_index % 3]++; }
  void SignalConfigChange() override { config_changes++; }
  std::atomic<int> used[3] = {0, 0, 0};
  std::atomic<int> config_changes = 0;
};

struct Packet {
  Header header;
  std::vector<uint8_t> data;
  Op op() const { return static_cast<Op>(header.op); }
  std::string text() const { return std::string(data.begin(), data.end()); }
};

template <typename Pred>
bool WaitUntil(Pred pred, int timeout_ms = 3000) {
  for (int i = 0; i < timeout_ms; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return pred();
}

inline Header GuestHeader(uint32_t src_port, uint32_t dst_port, Op op, uint32_t len = 0) {
  Header h{};
  h.src_cid = kCid;
  h.dst_cid = kHostCid;
  h.src_port = src_port;
  h.dst_port = dst_port;
  h.len = len;
  h.type = kTypeStream;
  h.op = static_cast<uint16_t>(op);
  h.buf_alloc = kGuestBufAlloc;
  return h;
}

// Host side: a blocking Unix socket with a receive timeout.
inline UniqueFd HostConnect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) return {};
  timeval tv{2, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

inline void HostWrite(int fd, std::string_view s) {
  ASSERT_EQ(::send(fd, s.data(), s.size(), MSG_NOSIGNAL), static_cast<ssize_t>(s.size()));
}

// Reads exactly n bytes (or fewer at EOF/timeout).
inline std::string HostRead(int fd, size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<size_t>(r);
  }
  out.resize(got);
  return out;
}

inline std::string HostReadLine(int fd) {
  std::string line;
  for (int i = 0; i < 64; ++i) {
    char c;
    if (::recv(fd, &c, 1, 0) != 1) break;
    line.push_back(c);
    if (c == '\n') break;
  }
  return line;
}

// True when the peer closed: recv returns 0 within the timeout, or ECONNRESET when the
// peer closed with bytes of ours unread.
inline bool HostSeesEof(int fd) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, 0);
  return n == 0 || (n < 0 && errno == ECONNRESET);
}

inline UniqueFd AcceptWithin(int listener, int timeout_ms = 2000) {
  pollfd pfd{listener, POLLIN, 0};
  if (::poll(&pfd, 1, timeout_ms) != 1) return {};
  UniqueFd fd(::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC));
  timeval tv{2, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  return fd;
}

class VsockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/vsock-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    path_ = dir_ + "/v.sock";
    loop_ = std::move(*EventLoop::Create("vsock-test"));
    ASSERT_TRUE(loop_->Start());
    auto device =
        Vsock::Create({.guest_cid = kCid, .uds_path = path_, .max_connections = 64}, *loop_);
    ASSERT_TRUE(device) << device.error().message;
    device_ = std::move(*device);
    queues_.reserve(3);
    for (int i = 0; i < 3; ++i) queues_.emplace_back(Vsock::kQueueSize);
    ActivateDevice();
  }

  // What a driver does at DRIVER_OK: fresh rings, queues ready, rx buffers posted.
  void ActivateDevice() {
    rx_.emplace(memory_, Vsock::kQueueSize, 0x10000);
    tx_.emplace(memory_, Vsock::kQueueSize, 0x20000);
    ev_.emplace(memory_, Vsock::kQueueSize, 0x30000);
    rx_posted_ = tx_queued_ = 0;
    for (Queue& q : queues_) q.Reset();
    rx_->Configure(queues_[0]);
    tx_->Configure(queues_[1]);
    ev_->Configure(queues_[2]);
    for (Queue& q : queues_) ASSERT_TRUE(q.Activate(memory_));
    ASSERT_TRUE(device_->Activate({memory_, queues_, kFVersion1 | kVsockFStream, interrupt_}));
    PostRx(kRxBuffers);
  }

  void TearDown() override {
    device_.reset();
    loop_->Stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  void PostRx(uint32_t count) {
    for (uint32_t i = 0; i < count; ++i) {
      GuestAddress addr = kRxBase + (rx_posted_++ % kRxBuffers) * 0x1100ull;
      const TestBuffer buffer{addr, kRxBufSize, true};
      rx_->AddChain({&buffer, 1});
    }
    device_->QueueNotify(Vsock::kRxQueue);
  }

  // The next packet the device put on the rx queue; reposts its buffer.
  std::optional<Packet> Receive(int timeout_ms = 2000) {
    std::optional<UsedElement> used;
    if (!WaitUntil([&] { return (used = rx_->NextUsed()).has_value(); }, timeout_ms)) {
      return std::nullopt;
    }
    GuestAddress addr = kRxBase + (used->id % kRxBuffers) * 0x1100ull;
    Packet packet{*memory_.ReadObj<Header>(addr), {}};
    EXPECT_GE(used->len, sizeof(Header));
    EXPECT_EQ(used->len, sizeof(Header) + packet.header.len);
    packet.data.resize(std::min<uint32_t>(packet.header.len, kRxBufSize - sizeof(Header)));
    if (!packet.data.empty()) memory_.Read(addr + sizeof(Header), packet.data);
    PostRx(1);
    return packet;
  }

  // Puts a packet in the next tx slot without kicking.
  void QueueTx(const Header& header, std::string_view payload = {}) {
    GuestAddress addr = kTxBase + (tx_queued_++ % kTxSlots) * kTxSlotSize;
    memory_.WriteObj(addr, header);
    if (!payload.empty()) {
      memory_.Write(addr + sizeof(Header),
                    {reinterpret_cast<const uint8_t*>(payload.data()), payload.size()});
    }
    const TestBuffer buffer{addr, static_cast<uint32_t>(sizeof(Header) + payload.size()), false};
    tx_->AddChain({&buffer, 1});
  }

  void KickTxAndWait() {
    device_->QueueNotify(Vsock::kTxQueue);
    ASSERT_TRUE(WaitUntil([&] { return tx_->ReadUsedIdx() == tx_->avail_idx(); }));
  }

  void Send(const Header& header, std::string_view payload = {}) {
    QueueTx(header, payload);
    KickTxAndWait();
  }

  // Host connects and asks for guest port `port`; the guest accepts. Returns the host fd
  // and sets host_port.
  UniqueFd EstablishFromHost(uint32_t port, uint32_t& host_port, std::string_view extra = {}) {
    UniqueFd host = HostConnect(path_);
    EXPECT_TRUE(host.valid());
    HostWrite(host.get(), "CONNECT " + std::to_string(port) + "\n" + std::string(extra));
    auto request = Receive();
    EXPECT_TRUE(request);
    if (!request) return {};
    EXPECT_EQ(request->op(), Op::kRequest);
    EXPECT_EQ(request->header.dst_port, port);
    host_port = request->header.src_port;
    Send(GuestHeader(port, host_port, Op::kResponse));
    EXPECT_EQ(HostReadLine(host.get()), "OK " + std::to_string(host_port) + "\n");
    return host;
  }

  std::string dir_;
  std::string path_;
  std::unique_ptr<EventLoop> loop_;
  GuestMemory memory_ = virtio::testing::MakeTestMemory();
  std::vector<virtio::Queue> queues_;
  std::optional<TestDriver> rx_, tx_, ev_;
  CountingInterrupt interrupt_;
  std::unique_ptr<Vsock> device_;
  uint32_t rx_posted_ = 0;
  uint32_t tx_queued_ = 0;
};

}  // namespace vireo::virtio::vsock::testing
