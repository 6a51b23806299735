#include "virtio/blk.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <optional>
#include <thread>
#include <vector>

#include "base/bytes.h"
#include "block/raw_file.h"
#include "block/testing.h"
#include "virtio/testing/driver.h"

namespace vireo::virtio {
namespace {

using block::testing::Pattern;
using block::testing::ReadWholeFile;
using testing::TestBuffer;
using testing::TestDriver;

constexpr GuestAddress kHeaders = 0x20000;  // 32 bytes per request: header, then status
constexpr GuestAddress kData = 0x40000;
constexpr GuestAddress kTable = 0x30000;
constexpr uint16_t kRingSize = 256;

class ThreadSafeInterrupt : public QueueInterrupt {
 public:
  void SignalUsed(uint16_t) override { used++; }
  void SignalConfigChange() override { config_changes++; }
  std::atomic<int> used{0};
  std::atomic<int> config_changes{0};
};

struct Done {
  uint8_t status;
  uint32_t len;
};

class BlkTest : public ::testing::Test {
 protected:
  BlkTest() : memory_(testing::MakeTestMemory()), queues_{Queue(kRingSize)} {}
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    auto loop = EventLoop::Create("blk-test");
    ASSERT_TRUE(loop);
    loop_ = std::move(*loop);
    ASSERT_TRUE(loop_->Start());
  }
  void TearDown() override {
    device_.reset();  // resets: the loop must still be there
    loop_->Stop();
  }

  void Start(const std::vector<uint8_t>& contents, block::RawOptions raw = {},
             BlkOptions options = {}) {
    path_ = dir_.File("disk.img", contents);
    auto file = block::RawFile::Open(path_, raw);
    ASSERT_TRUE(file) << file.error().message;
    auto blk = Blk::Create(std::move(*file), std::move(options), *loop_);
    ASSERT_TRUE(blk) << blk.error().message;
    device_ = std::move(*blk);
    Activate();
  }
  void Activate() {
    driver_.emplace(memory_, kRingSize);
    queues_[0].Reset();
    driver_->Configure(queues_[0]);
    queues_[0].set_indirect_desc(true);
    ASSERT_TRUE(queues_[0].Activate(memory_));
    ASSERT_TRUE(device_->Activate(
        ActivateContext{memory_, queues_, kFVersion1 | device_->device_features(), interrupt_}));
    SyncLoop();  // the activation's own pass over the queue is done
  }
  // Returns once the loop has run everything that was ready when it was called.
  void SyncLoop() {
    for (int i = 0; i < 2; ++i) {
      std::promise<void> done;
      auto ran = done.get_future();
      ASSERT_TRUE(loop_->Post([&] { done.set_value(); }));
      ran.wait();
    }
  }

  // Publishes a request using header/status slot `n`; data buffers follow the header.
  uint16_t Add(int n, uint32_t type, uint64_t sector, std::vector<TestBuffer> data) {
    const GuestAddress header = kHeaders + 32ull * n;
    memory_.WriteObj(header, BlkRequestHeader{type, 0, sector});
    memory_.WriteObj<uint8_t>(header + 16, 0xee);
    std::vector<TestBuffer> buffers{{header, 16, false}};
    buffers.insert(buffers.end(), data.begin(), data.end());
    buffers.push_back({header + 16, 1, true});
    return driver_->AddChain(buffers);
  }
  uint8_t StatusOf(int n) { return *memory_.ReadObj<uint8_t>(kHeaders + 32ull * n + 16); }

  // Waits for `count` used elements; returns used length by head.
  std::map<uint16_t, uint32_t> Wait(size_t count) {
    std::map<uint16_t, uint32_t> used;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (used.size() < count && std::chrono::steady_clock::now() < deadline) {
      if (auto element = driver_->NextUsed()) {
        used[static_cast<uint16_t>(element->id)] = element->len;
      } else {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    }
    EXPECT_EQ(used.size(), count);
    return used;
  }
  // One request, notified and waited for.
  Done Run(uint32_t type, uint64_t sector, std::vector<TestBuffer> data) {
    uint16_t head = Add(0, type, sector, std::move(data));
    device_->QueueNotify(0);
    auto used = Wait(1);
    return {StatusOf(0), used.count(head) ? used[head] : 0xdeadbeef};
  }
  std::vector<uint8_t> Guest(GuestAddress addr, size_t len) {
    std::vector<uint8_t> bytes(len);
    EXPECT_TRUE(memory_.Read(addr, bytes));
    return bytes;
  }

  block::testing::TempDir dir_;
  GuestMemory memory_;
  std::vector<Queue> queues_;
  std::optional<TestDriver> driver_;
  ThreadSafeInterrupt interrupt_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<Blk> device_;
  std::string path_;
};

TEST_F(BlkTest, DescribesItselfAndRoundsCapacityDown) {
  Start(std::vector<uint8_t>((1 << 20) + 100, 1));
  EXPECT_EQ(device_->device_type(), 2u);
  EXPECT_EQ(device_->num_queues(), 1);
  EXPECT_EQ(device_->max_queue_size(), 256);
  EXPECT_EQ(device_->device_features(), kBlkFSegMax | kBlkFBlkSize | kBlkFFlush);
  uint64_t capacity = 0;
  EXPECT_TRUE(device_->ReadConfig(0, {reinterpret_cast<uint8_t*>(&capacity), 8}));
  EXPECT_EQ(capacity, 2048u);
  uint32_t value = 0;
  EXPECT_TRUE(device_->ReadConfig(12, {reinterpret_cast<uint8_t*>(&value), 4}));
  EXPECT_EQ(value, Blk::kSegMax);
  EXPECT_TRUE(device_->ReadConfig(20, {reinterpret_cast<uint8_t*>(&value), 4}));
  EXPECT_EQ(value, 512u);
  EXPECT_FALSE(device_->ReadConfig(70, {reinterpret_cast<uint8_t*>(&value), 4}));
  EXPECT_FALSE(device_->WriteConfig(0, AsBytes(value)));
  EXPECT_EQ(device_->config().num_queues, 1);
}

TEST_F(BlkTest, WritesAndReadsBackAtManySectorsWith32InFlight) {
  // A backend queue shallower than the guest's makes requests wait for completions.
  Start(std::vector<uint8_t>(4 << 20, 0), {.queue_depth = 8});
  constexpr int kCount = 32;
  constexpr uint32_t kLen = 8192;
  auto sector = [](int i) { return static_cast<uint64_t>(i) * 97 + 3; };
  for (int i = 0; i < kCount; ++i) {
    memory_.Write(kData + uint64_t{kLen} * i, Pattern(kLen, i));
    Add(i, kBlkTOut, sector(i), {{kData + uint64_t{kLen} * i, kLen, false}});
  }
  device_->QueueNotify(0);
  for (auto [head, len] : Wait(kCount)) EXPECT_EQ(len, 1u) << head;
  for (int i = 0; i < kCount; ++i) EXPECT_EQ(StatusOf(i), kBlkSOk);
  EXPECT_GT(device_->counters().backend_full, 0u);

  // Read back into the second RAM region, each through two buffers.
  const GuestAddress base = testing::kRegion1Base;
  for (int i = 0; i < kCount; ++i) {
    const GuestAddress at = base + uint64_t{kLen} * i;
    Add(i, kBlkTIn, sector(i), {{at, kLen / 2, true}, {at + kLen / 2, kLen / 2, true}});
  }
  device_->QueueNotify(0);
  for (auto [head, len] : Wait(kCount)) EXPECT_EQ(len, kLen + 1) << head;
  const std::vector<uint8_t> file = ReadWholeFile(path_);
  for (int i = 0; i < kCount; ++i) {
    EXPECT_EQ(StatusOf(i), kBlkSOk);
    EXPECT_EQ(Guest(base + uint64_t{kLen} * i, kLen), Pattern(kLen, i)) << i;
    std::vector<uint8_t> on_disk(file.begin() + sector(i) * 512,
                                 file.begin() + sector(i) * 512 + kLen);
    EXPECT_EQ(on_disk, Pattern(kLen, i)) << i;
  }
  BlkCounters counters = device_->counters();
  EXPECT_EQ(counters.writes, 32u);
  EXPECT_EQ(counters.reads, 32u);
  EXPECT_EQ(counters.bytes_written, 32u * kLen);
  EXPECT_EQ(counters.bytes_read, 32u * kLen);
  EXPECT_EQ(counters.io_errors, 0u);
  EXPECT_GT(interrupt_.used.load(), 0);
  EXPECT_EQ(device_->in_flight(), 0u);
}

TEST_F(BlkTest, Flush) {
  Start(std::vector<uint8_t>(1 << 20, 0));
  Done done = Run(kBlkTFlush, 0, {});
  EXPECT_EQ(done.status, kBlkSOk);
  EXPECT_EQ(done.len, 1u);
  EXPECT_EQ(device_->counters().flushes, 1u);
}

TEST_F(BlkTest, GetIdReturnsTheSerialZeroPadded) {
  Start(std::vector<uint8_t>(1 << 20, 0), {}, {.serial = "vireo-disk-0"});
  memory_.Write(kData, std::vector<uint8_t>(32, 0xff));
  Done done = Run(kBlkTGetId, 0, {{kData, 20, true}});
  EXPECT_EQ(done.status, kBlkSOk);
  EXPECT_EQ(done.len, 21u);
  std::vector<uint8_t> expected(20, 0);
  std::string serial = "vireo-disk-0";
  std::copy(serial.begin(), serial.end(), expected.begin());
  EXPECT_EQ(Guest(kData, 20), expected);
  EXPECT_EQ(Guest(kData + 20, 1)[0], 0xff);
  // A short buffer gets what fits.
  memory_.Write(kData, std::vector<uint8_t>(32, 0xff));
  done = Run(kBlkTGetId, 0, {{kData, 5, true}});
  EXPECT_EQ(done.len, 6u);
  EXPECT_EQ(Guest(kData, 6), (std::vector<uint8_t>{'v', 'i', 'r', 'e', 'o', 0xff}));
  EXPECT_FALSE(Blk::Create(nullptr, {}, *loop_));
}

TEST_F(BlkTest, SerialLongerThan20BytesIsRefused) {
  auto file = block::RawFile::Open(dir_.SparseFile("disk", 4096));
  ASSERT_TRUE(file);
  EXPECT_FALSE(Blk::Create(std::move(*file), {.serial = std::string(21, 'x')}, *loop_));
}

TEST_F(BlkTest, ReadAcrossTheEndFailsAndNothingElseIsAffected) {
  std::vector<uint8_t> contents = Pattern((1 << 20) + 100, 7);
  Start(contents);
  memory_.Write(kData, std::vector<uint8_t>(2048, 0xaa));
  uint16_t bad = Add(0, kBlkTIn, 2047, {{kData, 1024, true}});
  uint16_t good = Add(1, kBlkTIn, 2047, {{kData + 1024, 512, true}});
  device_->QueueNotify(0);
  auto used = Wait(2);
  EXPECT_EQ(StatusOf(0), kBlkSIoErr);
  EXPECT_EQ(used[bad], 1u);
  EXPECT_EQ(Guest(kData, 1024), std::vector<uint8_t>(1024, 0xaa));
  EXPECT_EQ(StatusOf(1), kBlkSOk);
  EXPECT_EQ(used[good], 513u);
  EXPECT_EQ(Guest(kData + 1024, 512),
            std::vector<uint8_t>(contents.begin() + 2047 * 512, contents.begin() + 2048 * 512));
  EXPECT_EQ(device_->counters().io_errors, 1u);
  EXPECT_EQ(device_->counters().bad_requests, 1u);
}

TEST_F(BlkTest, WriteToReadOnlyBackendFailsAndLeavesTheFile) {
  std::vector<uint8_t> contents = Pattern(1 << 20, 3);
  Start(contents, {.read_only = true});
  EXPECT_NE(device_->device_features() & kBlkFRo, 0u);
  memory_.Write(kData, std::vector<uint8_t>(4096, 0));
  EXPECT_EQ(Run(kBlkTOut, 0, {{kData, 4096, false}}).status, kBlkSIoErr);
  EXPECT_EQ(ReadWholeFile(path_), contents);
  EXPECT_EQ(Run(kBlkTIn, 0, {{kData, 4096, true}}).status, kBlkSOk);
  EXPECT_EQ(Guest(kData, 4096), std::vector<uint8_t>(contents.begin(), contents.begin() + 4096));
  EXPECT_EQ(Run(kBlkTFlush, 0, {}).status, kBlkSOk);
}

TEST_F(BlkTest, DiscardAndWriteZeroesZeroTheRange) {
  std::vector<uint8_t> contents = Pattern(1 << 20, 5);
  Start(contents, {.discard = true}, {.discard = true});
  EXPECT_EQ(device_->device_features() & (kBlkFDiscard | kBlkFWriteZeroes),
            kBlkFDiscard | kBlkFWriteZeroes);
  EXPECT_EQ(device_->config().max_discard_seg, kBlkMaxDwzSegments);
  EXPECT_GT(device_->config().max_write_zeroes_sectors, 0u);

  const BlkDwzSegment discard[] = {{8, 16, 0}};
  memory_.Write(kData, AsBytes(discard));
  Done done = Run(kBlkTDiscard, 0, {{kData, sizeof(discard), false}});
  EXPECT_EQ(done.status, kBlkSOk);
  EXPECT_EQ(done.len, 1u);
  const BlkDwzSegment zeroes[] = {{100, 8, 0}, {200, 1, kBlkDwzFlagUnmap}};
  memory_.Write(kData, AsBytes(zeroes));
  EXPECT_EQ(Run(kBlkTWriteZeroes, 0, {{kData, sizeof(zeroes), false}}).status, kBlkSOk);

  std::vector<uint8_t> expected = contents;
  std::fill(expected.begin() + 8 * 512, expected.begin() + 24 * 512, 0);
  std::fill(expected.begin() + 100 * 512, expected.begin() + 108 * 512, 0);
  std::fill(expected.begin() + 200 * 512, expected.begin() + 201 * 512, 0);
  EXPECT_EQ(ReadWholeFile(path_), expected);
  EXPECT_EQ(device_->counters().discards, 1u);
  EXPECT_EQ(device_->counters().write_zeroes, 1u);
}

TEST_F(BlkTest, UnknownTypeAndUnofferedDiscardAreUnsupported) {
  Start(std::vector<uint8_t>(1 << 20, 0));
  Done done = Run(0x1234, 0, {});
  EXPECT_EQ(done.status, kBlkSUnsupp);
  EXPECT_EQ(done.len, 1u);
  const BlkDwzSegment discard[] = {{0, 8, 0}};
  memory_.Write(kData, AsBytes(discard));
  EXPECT_EQ(Run(kBlkTDiscard, 0, {{kData, 16, false}}).status, kBlkSUnsupp);
  EXPECT_EQ(device_->counters().unsupported, 2u);
}

TEST_F(BlkTest, HostileRequestsCompleteAndTheDeviceGoesOn) {
  std::vector<uint8_t> contents = Pattern(1 << 20, 9);
  Start(contents);
  // No status byte: nothing writable.
  memory_.WriteObj(kHeaders, BlkRequestHeader{kBlkTIn, 0, 0});
  uint16_t no_status =
      driver_->AddChain(std::vector<TestBuffer>{{kHeaders, 16, false}, {kData, 512, false}});
  uint16_t ragged = Add(1, kBlkTIn, 0, {{kData, 1000, true}});
  uint16_t huge_sector = Add(2, kBlkTIn, UINT64_MAX, {{kData, 512, true}});
  uint16_t wrapping = Add(3, kBlkTOut, (1ull << 55) + 1, {{kData, 512, false}});
  // 300 data buffers through an indirect table.
  memory_.WriteObj(kHeaders + 32 * 4, BlkRequestHeader{kBlkTIn, 0, 0});
  std::vector<TestBuffer> many{{kHeaders + 32 * 4, 16, false}};
  for (int i = 0; i < 300; ++i) many.push_back({kData + 512ull * i, 512, true});
  many.push_back({kHeaders + 32 * 4 + 16, 1, true});
  uint16_t segments = driver_->AddIndirectChain(kTable, many);
  // The header in a device-writable buffer.
  memory_.WriteObj(kHeaders + 32 * 5, BlkRequestHeader{kBlkTIn, 0, 0});
  uint16_t writable_header = driver_->AddChain(
      std::vector<TestBuffer>{{kHeaders + 32 * 5, 16, true}, {kHeaders + 32 * 5 + 16, 1, true}});
  // A looping chain.
  const uint16_t loop_head = 200;
  driver_->WriteDescriptor(loop_head, kData, 16, kDescFNext, loop_head);
  driver_->Publish(loop_head);
  device_->QueueNotify(0);

  auto used = Wait(7);
  EXPECT_EQ(used[no_status], 0u);
  EXPECT_EQ(used[loop_head], 0u);
  for (uint16_t head : {ragged, huge_sector, wrapping, segments, writable_header}) {
    EXPECT_EQ(used[head], 1u) << head;
  }
  for (int n : {1, 2, 3, 4, 5}) EXPECT_EQ(StatusOf(n), kBlkSIoErr) << n;
  EXPECT_EQ(ReadWholeFile(path_), contents);
  BlkCounters counters = device_->counters();
  EXPECT_EQ(counters.no_status, 1u);
  EXPECT_EQ(counters.bad_chains, 1u);
  EXPECT_EQ(counters.bad_requests, 7u);
  EXPECT_FALSE(device_->needs_reset());

  Done done = Run(kBlkTIn, 1, {{kData, 512, true}});
  EXPECT_EQ(done.status, kBlkSOk);
  EXPECT_EQ(Guest(kData, 512),
            std::vector<uint8_t>(contents.begin() + 512, contents.begin() + 1024));
}

TEST_F(BlkTest, BrokenRingNeedsReset) {
  Start(std::vector<uint8_t>(1 << 20, 0));
  driver_->SetAvailIdx(1000);
  device_->QueueNotify(0);
  for (int i = 0; i < 10000 && !device_->needs_reset(); ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  EXPECT_TRUE(device_->needs_reset());
  EXPECT_EQ(interrupt_.config_changes.load(), 1);
  device_->Reset();
  EXPECT_FALSE(device_->needs_reset());
}

TEST_F(BlkTest, NotifyFromOtherThreadsAndThroughTheEventFd) {
  Start(std::vector<uint8_t>(1 << 20, 0));
  std::atomic<bool> stop{false};
  std::vector<std::thread> kickers;
  for (int t = 0; t < 3; ++t) {
    kickers.emplace_back([&] {
      while (!stop.load()) device_->QueueNotify(0);
    });
  }
  constexpr int kCount = 64;
  for (int i = 0; i < kCount; ++i) {
    Add(i % 128, kBlkTIn, static_cast<uint64_t>(i), {{kData + 512ull * i, 512, true}});
    if (i % 8 == 0) std::this_thread::yield();
  }
  auto used = Wait(kCount);
  stop = true;
  for (auto& thread : kickers) thread.join();
  for (auto [head, len] : used) EXPECT_EQ(len, 513u) << head;

  // The ioeventfd path: KVM writes the eventfd; nobody calls QueueNotify.
  uint16_t head = Add(0, kBlkTFlush, 0, {});
  const uint64_t one = 1;
  ASSERT_EQ(::write(device_->notify_fd(0), &one, sizeof(one)), 8);
  EXPECT_EQ(Wait(1).count(head), 1u);
  device_->QueueNotify(1);
  EXPECT_EQ(device_->counters().dropped_notifications, 1u);
}

TEST_F(BlkTest, ResetWaitsForRequestsInFlightAndTheDeviceWorksAfter) {
  Start(std::vector<uint8_t>(4 << 20, 0));
  for (int i = 0; i < 32; ++i) {
    Add(i, kBlkTIn, 64ull * i, {{testing::kRegion1Base + 32768ull * i, 32768, true}});
  }
  device_->QueueNotify(0);
  std::this_thread::sleep_for(std::chrono::microseconds(50));
  device_->Reset();
  EXPECT_EQ(device_->in_flight(), 0u);
  // Nothing completes after Reset returned.
  uint16_t used_idx = driver_->ReadUsedIdx();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(driver_->ReadUsedIdx(), used_idx);

  Activate();
  memory_.Write(kData, Pattern(4096, 1));
  EXPECT_EQ(Run(kBlkTOut, 10, {{kData, 4096, false}}).status, kBlkSOk);
  EXPECT_EQ(Run(kBlkTIn, 10, {{kData + 4096, 4096, true}}).status, kBlkSOk);
  EXPECT_EQ(Guest(kData + 4096, 4096), Pattern(4096, 1));
}

TEST_F(BlkTest, BuffersPostedBeforeActivateAreProcessed) {
  Start(std::vector<uint8_t>(1 << 20, 0));
  device_->Reset();
  driver_.emplace(memory_, kRingSize);
  queues_[0].Reset();
  driver_->Configure(queues_[0]);
  ASSERT_TRUE(queues_[0].Activate(memory_));
  uint16_t head = Add(0, kBlkTFlush, 0, {});
  ASSERT_TRUE(device_->Activate(ActivateContext{memory_, queues_, kFVersion1, interrupt_}));
  EXPECT_EQ(Wait(1).count(head), 1u);
  EXPECT_FALSE(device_->Activate(ActivateContext{memory_, queues_, kFVersion1, interrupt_}));
}

}  // namespace
}  // namespace vireo::virtio
