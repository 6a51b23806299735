// The fixture for virtio-net's tests: a real tap in a private network namespace; the test
// plays the guest through the test-side virtio driver and the wire through an AF_PACKET
// socket on the tap (or the kernel's own ARP and ICMP). Tests only.
#pragma once

#include "virtio/net/net.h"

#include <gtest/gtest.h>
#include <net/ethernet.h>

#include <algorithm>
#include <cstring>

#include <array>
#include <atomic>
#include <map>
#include <thread>

#include "base/bytes.h"
#include "virtio/net/test_netns.h"
#include "virtio/testing/driver.h"

namespace vireo::virtio::testing {

using namespace std::chrono_literals;

constexpr GuestAddress kRxRings = 0x10000;
constexpr GuestAddress kTxRings = 0x30000;
constexpr GuestAddress kTxData = 0x50000;
constexpr GuestAddress kRxData = kRegion1Base;
constexpr uint16_t kTestEtherType = 0x88b5;  // IEEE 802 local experimental
constexpr MacAddress kGuestMac = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
constexpr const char* kTapName = "vtap0";

class AtomicInterrupt : public QueueInterrupt {
 public:
  void SignalUsed(uint16_t queue) override { used[queue & 1]++; }
  void SignalConfigChange() override { config_changes++; }
  std::array<std::atomic<int>, 2> used{};
  std::atomic<int> config_changes{0};
};

inline std::vector<uint8_t> MakeFrame(size_t len, uint8_t seed, const MacAddress& src = kGuestMac) {
  std::vector<uint8_t> frame(len);
  for (size_t i = 0; i < len; ++i) frame[i] = static_cast<uint8_t>(seed + i * 7);
  std::fill_n(frame.begin(), 6, 0xff);
  std::copy(src.begin(), src.end(), frame.begin() + 6);
  frame[12] = kTestEtherType >> 8;
  frame[13] = kTestEtherType & 0xff;
  return frame;
}

struct RxFrame {
  VirtioNetHdr hdr{};
  std::vector<uint8_t> frame;
  std::vector<uint32_t> used_lens;
};

class NetTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto skip = EnterPrivateNetns()) GTEST_SKIP() << *skip;
    auto loop = EventLoop::Create("net-test");
    ASSERT_TRUE(loop);
    loop_ = std::move(*loop);
    ASSERT_TRUE(loop_->Start());
    queues_.reserve(2);
    queues_.emplace_back(Net::kQueueSize);
    queues_.emplace_back(Net::kQueueSize);
  }

  void TearDown() override {
    net_.reset();
    if (loop_) loop_->Stop();
  }

  void Create(NetOptions options = {}) {
    options.tap_name = kTapName;
    if (!options.mac) options.mac = kGuestMac;
    auto net = Net::Create(options, *loop_);
    ASSERT_TRUE(net) << net.error().message;
    net_ = std::move(*net);
    ASSERT_TRUE(ConfigureInterface(kTapName, "10.11.12.1", 9000));
    auto wire = PacketSocket::Open(kTapName);
    ASSERT_TRUE(wire) << wire.error().message;
    wire_.emplace(std::move(*wire));
  }

  // Creates the device and activates it with its offered features minus `without`.
  void Start(uint64_t without = 0, NetOptions options = {}) {
    Create(std::move(options));
    if (HasFatalFailure()) return;
    Activate((net_->device_features() & ~without) | kFVersion1);
  }

  void Activate(uint64_t features) {
    rx_.emplace(memory_, Net::kQueueSize, kRxRings);
    tx_.emplace(memory_, Net::kQueueSize, kTxRings);
    rx_->Configure(queues_[0]);
    tx_->Configure(queues_[1]);
    ASSERT_TRUE(queues_[0].Activate(memory_));
    ASSERT_TRUE(queues_[1].Activate(memory_));
    auto activated = net_->Activate({memory_, queues_, features, interrupt_});
    ASSERT_TRUE(activated) << activated.error().message;
  }

  // Posts one rx chain of writable buffers of the given sizes; returns its head.
  uint16_t PostRx(const std::vector<uint32_t>& sizes, bool notify = true) {
    std::vector<TestBuffer> buffers;
    for (uint32_t size : sizes) {
      buffers.push_back({rx_next_, size, true});
      rx_next_ += (size + 63) & ~63u;
    }
    const uint16_t head = rx_->AddChain(buffers);
    rx_chains_[head] = buffers;
    if (notify) net_->QueueNotify(Net::kRxQueue);
    return head;
  }

  // Sends header + frame as a tx chain split into `pieces` readable buffers.
  uint16_t SendTx(const std::vector<uint8_t>& frame, VirtioNetHdr hdr = {}, int pieces = 1) {
    std::vector<uint8_t> bytes(sizeof(hdr));
    std::memcpy(bytes.data(), &hdr, sizeof(hdr));
    bytes.insert(bytes.end(), frame.begin(), frame.end());
    EXPECT_TRUE(memory_.Write(kTxData, bytes));
    std::vector<TestBuffer> buffers;
    const size_t piece = bytes.size() / pieces;
    for (int i = 0; i < pieces; ++i) {
      const size_t begin = i * piece;
      const size_t end = i + 1 == pieces ? bytes.size() : begin + piece;
      buffers.push_back({kTxData + begin, static_cast<uint32_t>(end - begin), false});
    }
    return SendChain(buffers);
  }

  uint16_t SendChain(const std::vector<TestBuffer>& buffers) {
    const uint16_t head = tx_->AddChain(buffers);
    net_->QueueNotify(Net::kTxQueue);
    return head;
  }

  static std::optional<UsedElement> WaitUsed(TestDriver& driver,
                                             std::chrono::milliseconds timeout = 3s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
      if (auto used = driver.NextUsed()) return used;
      std::this_thread::sleep_for(1ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return std::nullopt;
  }

  // Bytes of a used rx chain: the first `len` bytes of its buffers.
  std::vector<uint8_t> ChainBytes(uint16_t head, uint32_t len) {
    std::vector<uint8_t> out;
    for (const TestBuffer& buffer : rx_chains_.at(head)) {
      const uint32_t n = std::min(len, buffer.len);
      std::vector<uint8_t> part(n);
      EXPECT_TRUE(memory_.Read(buffer.addr, part));
      out.insert(out.end(), part.begin(), part.end());
      len -= n;
    }
    return out;
  }

  // The next received packet: its used elements, joined by num_buffers.
  std::optional<RxFrame> ReceiveFrame(std::chrono::milliseconds timeout = 3s) {
    auto first = WaitUsed(*rx_, timeout);
    if (!first) return std::nullopt;
    std::vector<uint8_t> bytes = ChainBytes(static_cast<uint16_t>(first->id), first->len);
    RxFrame rx;
    rx.used_lens.push_back(first->len);
    if (bytes.size() < sizeof(VirtioNetHdr)) return rx;
    std::memcpy(&rx.hdr, bytes.data(), sizeof(rx.hdr));
    for (int i = 1; i < rx.hdr.num_buffers; ++i) {
      auto next = WaitUsed(*rx_);
      if (!next) return rx;
      auto more = ChainBytes(static_cast<uint16_t>(next->id), next->len);
      bytes.insert(bytes.end(), more.begin(), more.end());
      rx.used_lens.push_back(next->len);
    }
    rx.frame.assign(bytes.begin() + sizeof(VirtioNetHdr), bytes.end());
    return rx;
  }

  // The next received frame with `ethertype`, skipping others.
  std::optional<RxFrame> ReceiveType(uint16_t ethertype) {
    for (int i = 0; i < 16; ++i) {
      auto rx = ReceiveFrame();
      if (!rx) return std::nullopt;
      if (rx->frame.size() >= ETH_HLEN && LoadBe16(rx->frame, 12) == ethertype) return rx;
    }
    return std::nullopt;
  }

  static uint16_t LoadBe16(std::span<const uint8_t> bytes, size_t offset) {
    return static_cast<uint16_t>(bytes[offset] << 8 | bytes[offset + 1]);
  }

  template <typename Predicate>
  static bool Eventually(Predicate predicate) {
    for (int i = 0; i < 3000; ++i) {
      if (predicate()) return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }

  GuestMemory memory_ = MakeTestMemory();
  std::unique_ptr<EventLoop> loop_;
  std::vector<Queue> queues_;
  AtomicInterrupt interrupt_;
  std::unique_ptr<Net> net_;  // after loop_: destroyed (and Reset) first
  std::optional<TestDriver> rx_;
  std::optional<TestDriver> tx_;
  std::optional<PacketSocket> wire_;
  GuestAddress rx_next_ = kRxData;
  std::map<uint16_t, std::vector<TestBuffer>> rx_chains_;
};

}  // namespace vireo::virtio::testing
