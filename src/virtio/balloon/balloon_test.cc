#include "virtio/balloon/balloon.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <vector>

#include "virtio/balloon/discard.h"
#include "virtio/testing/driver.h"

namespace vireo::virtio::balloon {
namespace {

using testing::kRegion0End;
using testing::kRegion1Base;
using testing::kRegion1End;
using testing::TestBuffer;
using testing::TestDriver;
using Stats = std::vector<std::pair<uint16_t, uint64_t>>;

constexpr GuestAddress kPfns = 0x80000;   // PFN arrays and stats buffers
constexpr GuestAddress kPfns2 = 0x90000;  // a second one
constexpr uint64_t kAllFeatures = kBalloonFStatsVq | kBalloonFDeflateOnOom | kBalloonFPageReporting;

uint32_t Pfn(GuestAddress addr) { return static_cast<uint32_t>(addr >> kPageShift); }

// The device signals from the loop thread while the test thread reads.
class CountingInterrupt : public QueueInterrupt {
 public:
  void SignalUsed(uint16_t queue_index) override { used[queue_index % 4]++; }
  void SignalConfigChange() override { config_changes++; }
  std::atomic<int> used[4] = {};
  std::atomic<int> config_changes = 0;
};

bool WaitFor(const std::function<bool()>& done) {
  for (int i = 0; i < 5000; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

class BalloonTest : public ::testing::Test {
 protected:
  BalloonTest()
      : memory_(testing::MakeTestMemory()),
        loop_(*EventLoop::Create("balloon-test")),
        queues_(Balloon::kMaxQueues, Queue(Balloon::kQueueSize)),
        drivers_{TestDriver(memory_, 64, 0x10000), TestDriver(memory_, 64, 0x20000),
                 TestDriver(memory_, 64, 0x30000), TestDriver(memory_, 64, 0x40000)} {
    EXPECT_TRUE(loop_->Start());
    balloon_ = *Balloon::Create(BalloonOptions{}, *loop_);
  }

  // DRIVER_OK with `features`: queues 0, 1 and one per optional queue negotiated.
  void Activate(uint64_t features = kAllFeatures) {
    size_t count =
        2 + ((features & kBalloonFStatsVq) ? 1 : 0) + ((features & kBalloonFPageReporting) ? 1 : 0);
    for (size_t i = 0; i < count; ++i) {
      drivers_[i].Configure(queues_[i]);
      ASSERT_TRUE(queues_[i].Activate(memory_));
    }
    ASSERT_TRUE(
        balloon_->Activate(ActivateContext{memory_, queues_, features | kFVersion1, interrupt_}));
  }

  void Touch(GuestAddress addr, uint64_t len, uint8_t value) {
    std::vector<uint8_t> bytes(len, value);
    ASSERT_TRUE(memory_.Write(addr, bytes));
  }
  std::vector<uint8_t> ReadBack(GuestAddress addr, uint64_t len) {
    std::vector<uint8_t> bytes(len);
    EXPECT_TRUE(memory_.Read(addr, bytes));
    return bytes;
  }
  size_t ResidentPages(GuestAddress addr, uint64_t len) {
    auto span = memory_.Span(addr, len);
    EXPECT_TRUE(span);
    std::vector<unsigned char> vec(len / kPageSize);
    EXPECT_EQ(::mincore(span->data(), len, vec.data()), 0);
    size_t resident = 0;
    for (unsigned char v : vec) resident += v & 1;
    return resident;
  }
  // Posts `pfns` as one readable buffer at `at` on queue `index` and kicks it.
  uint16_t PostPfns(uint16_t index, const std::vector<uint32_t>& pfns, GuestAddress at = kPfns) {
    EXPECT_TRUE(
        memory_.Write(at, {reinterpret_cast<const uint8_t*>(pfns.data()), pfns.size() * 4}));
    uint32_t len = static_cast<uint32_t>(pfns.size() * 4);
    uint16_t head = drivers_[index].AddChain(std::vector<TestBuffer>{{at, len, false}});
    balloon_->QueueNotify(index);
    return head;
  }
  // Writes struct virtio_balloon_stat entries at `at` and posts them on queue `index`.
  uint16_t PostStats(uint16_t index, const Stats& stats, GuestAddress at = kPfns) {
    std::vector<uint8_t> bytes;
    for (auto [tag, value] : stats) {
      for (int i = 0; i < 2; ++i) bytes.push_back(static_cast<uint8_t>(tag >> (8 * i)));
      for (int i = 0; i < 8; ++i) bytes.push_back(static_cast<uint8_t>(value >> (8 * i)));
    }
    EXPECT_TRUE(memory_.Write(at, bytes));
    uint32_t len = static_cast<uint32_t>(bytes.size());
    uint16_t head = drivers_[index].AddChain(std::vector<TestBuffer>{{at, len, false}});
    balloon_->QueueNotify(index);
    return head;
  }
  std::optional<UsedElement> WaitUsed(uint16_t index) {
    std::optional<UsedElement> used;
    WaitFor([&] { return (used = drivers_[index].NextUsed()).has_value(); });
    return used;
  }

  GuestMemory memory_;
  std::unique_ptr<EventLoop> loop_;
  CountingInterrupt interrupt_;
  std::vector<Queue> queues_;
  std::vector<TestDriver> drivers_;
  std::unique_ptr<Balloon> balloon_;  // last: reset before the queues and loop go
};

TEST_F(BalloonTest, DescribesItself) {
  EXPECT_EQ(balloon_->device_type(), 5u);
  EXPECT_EQ(balloon_->num_queues(), 4);
  EXPECT_EQ(balloon_->device_features(), kAllFeatures);
  auto plain = *Balloon::Create(BalloonOptions{false, false, false}, *loop_);
  EXPECT_EQ(plain->device_features(), 0u);
  std::vector<int> fds;
  for (uint16_t i = 0; i < 4; ++i) fds.push_back(balloon_->notify_fd(i));
  for (size_t i = 0; i < fds.size(); ++i) {
    EXPECT_GE(fds[i], 0);
    for (size_t j = 0; j < i; ++j) EXPECT_NE(fds[i], fds[j]);
  }
  EXPECT_EQ(balloon_->notify_fd(4), -1);
}

TEST_F(BalloonTest, TargetAndActualInConfigSpace) {
  ASSERT_TRUE(balloon_->SetTarget(7));  // before DRIVER_OK: no interrupt
  EXPECT_EQ(interrupt_.config_changes, 0);
  Activate();
  ASSERT_TRUE(balloon_->SetTarget(100));
  EXPECT_EQ(interrupt_.config_changes, 1);
  ASSERT_TRUE(balloon_->SetTarget(100));  // unchanged: no interrupt
  EXPECT_EQ(interrupt_.config_changes, 1);
  EXPECT_FALSE(balloon_->SetTarget(1ull << 32));
  EXPECT_EQ(balloon_->target(), 100u);

  std::vector<uint8_t> config(8);
  ASSERT_TRUE(balloon_->ReadConfig(0, config));
  EXPECT_EQ(config, (std::vector<uint8_t>{100, 0, 0, 0, 0, 0, 0, 0}));
  const std::vector<uint8_t> actual = {42, 1, 0, 0};
  EXPECT_TRUE(balloon_->WriteConfig(4, actual));
  EXPECT_EQ(balloon_->actual(), 0x12au);
  EXPECT_TRUE(balloon_->WriteConfig(5, std::vector<uint8_t>{2}));  // a byte of `actual`
  EXPECT_EQ(balloon_->actual(), 0x22au);
  EXPECT_FALSE(balloon_->WriteConfig(0, actual));  // num_pages is the device's
  EXPECT_FALSE(balloon_->WriteConfig(2, actual));
  EXPECT_FALSE(balloon_->WriteConfig(6, actual));  // runs past the end
  EXPECT_EQ(balloon_->target(), 100u);
  std::vector<uint8_t> past(4, 0xff);
  EXPECT_FALSE(balloon_->ReadConfig(8, past));  // no free_page_hint_cmd_id / poison_val
  EXPECT_EQ(past, std::vector<uint8_t>(4, 0));

  balloon_->Reset();  // actual goes back to 0, the host's target stays
  EXPECT_EQ(balloon_->actual(), 0u);
  EXPECT_EQ(balloon_->target(), 100u);
}

TEST_F(BalloonTest, InflateDiscardsHostPagesAndTheGuestReadsZeros) {
  Activate();
  Touch(kRegion1Base, 24 * kPageSize, 0xab);
  ASSERT_EQ(ResidentPages(kRegion1Base, 24 * kPageSize), 24u);
  std::vector<uint32_t> pfns;
  for (uint32_t i = 0; i < 16; ++i) pfns.push_back(Pfn(kRegion1Base) + i);
  pfns.push_back(Pfn(kRegion1Base) + 20);
  uint16_t head = PostPfns(0, pfns);
  auto used = WaitUsed(0);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  EXPECT_TRUE(WaitFor([&] { return interrupt_.used[0] == 1; }));

  // The host memory is gone before the guest looks at it again.
  EXPECT_EQ(ResidentPages(kRegion1Base, 16 * kPageSize), 0u);
  EXPECT_EQ(ResidentPages(kRegion1Base + 16 * kPageSize, 4 * kPageSize), 4u);
  EXPECT_EQ(ResidentPages(kRegion1Base + 20 * kPageSize, kPageSize), 0u);
  EXPECT_EQ(ReadBack(kRegion1Base, 16 * kPageSize), std::vector<uint8_t>(16 * kPageSize, 0));
  EXPECT_EQ(ReadBack(kRegion1Base + 16 * kPageSize, 4 * kPageSize),
            std::vector<uint8_t>(4 * kPageSize, 0xab));
  BalloonCounters counters = balloon_->counters();
  EXPECT_EQ(counters.inflate_chains, 1u);
  EXPECT_EQ(counters.pages_inflated, 17u);
  EXPECT_EQ(counters.discard_calls, 2u);  // one run of 16, one single page
  EXPECT_EQ(counters.bytes_discarded, 17 * kPageSize);
  EXPECT_EQ(counters.bad_pfns, 0u);
  EXPECT_EQ(counters.discard_failures, 0u);
}

TEST_F(BalloonTest, DeflateIsCountedAndPagesComeBack) {
  Activate();
  Touch(kRegion1Base, 8 * kPageSize, 0x11);
  std::vector<uint32_t> pfns;
  for (uint32_t i = 0; i < 8; ++i) pfns.push_back(Pfn(kRegion1Base) + i);
  PostPfns(0, pfns);
  ASSERT_TRUE(WaitUsed(0));
  uint16_t head = PostPfns(1, pfns, kPfns2);
  auto used = WaitUsed(1);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_TRUE(WaitFor([&] { return interrupt_.used[1] == 1; }));
  BalloonCounters counters = balloon_->counters();
  EXPECT_EQ(counters.deflate_chains, 1u);
  EXPECT_EQ(counters.pages_deflated, 8u);
  EXPECT_EQ(counters.pages_inflated, 8u);
  Touch(kRegion1Base, 8 * kPageSize, 0x22);  // the guest uses them again
  EXPECT_EQ(ResidentPages(kRegion1Base, 8 * kPageSize), 8u);
  EXPECT_EQ(ReadBack(kRegion1Base, 8 * kPageSize), std::vector<uint8_t>(8 * kPageSize, 0x22));
}

TEST_F(BalloonTest, PfnsOutsideRamAreIgnoredAndCounted) {
  Activate();
  Touch(kRegion1Base, kPageSize, 0x33);
  Touch(kRegion0End - kPageSize, kPageSize, 0x33);
  PostPfns(
      0, {Pfn(kRegion0End) - 1, Pfn(kRegion0End), Pfn(kRegion1Base), Pfn(kRegion1End), 0xffffffff});
  ASSERT_TRUE(WaitUsed(0));
  BalloonCounters counters = balloon_->counters();
  EXPECT_EQ(counters.pages_inflated, 2u);
  EXPECT_EQ(counters.bad_pfns, 3u);
  EXPECT_EQ(counters.bytes_discarded, 2 * kPageSize);
  EXPECT_EQ(ResidentPages(kRegion1Base, kPageSize), 0u);
  EXPECT_EQ(ResidentPages(kRegion0End - kPageSize, kPageSize), 0u);

  PostPfns(1, {Pfn(kRegion1Base), Pfn(kRegion1End)}, kPfns2);
  ASSERT_TRUE(WaitUsed(1));
  counters = balloon_->counters();
  EXPECT_EQ(counters.pages_deflated, 1u);
  EXPECT_EQ(counters.bad_pfns, 4u);
}

TEST_F(BalloonTest, AHugeChainIsBounded) {
  Activate();
  // A whole MiB of PFNs (262144), all pointing into the hole between the regions.
  std::vector<uint32_t> hole((kRegion1End - kRegion1Base) / 4, Pfn(kRegion0End));
  ASSERT_TRUE(memory_.Write(kRegion1Base,
                            {reinterpret_cast<const uint8_t*>(hole.data()), hole.size() * 4}));
  uint16_t head = drivers_[0].AddChain(std::vector<TestBuffer>{
      {kRegion1Base, static_cast<uint32_t>(kRegion1End - kRegion1Base), false}});
  balloon_->QueueNotify(0);
  auto used = WaitUsed(0);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  BalloonCounters counters = balloon_->counters();
  EXPECT_EQ(counters.bad_pfns, Balloon::kMaxPfnsPerChain);
  EXPECT_EQ(counters.truncated_chains, 1u);

  // A partial PFN at the end: the whole ones are used, the chain is counted.
  const std::vector<uint32_t> one = {Pfn(kRegion1Base)};
  ASSERT_TRUE(memory_.Write(kPfns, {reinterpret_cast<const uint8_t*>(one.data()), 4}));
  drivers_[0].AddChain(std::vector<TestBuffer>{{kPfns, 6, false}});
  balloon_->QueueNotify(0);
  ASSERT_TRUE(WaitUsed(0));
  counters = balloon_->counters();
  EXPECT_EQ(counters.pages_inflated, 1u);
  EXPECT_EQ(counters.truncated_chains, 2u);
}

TEST_F(BalloonTest, BadChainsCompleteAndABrokenRingNeedsReset) {
  Activate();
  drivers_[0].WriteDescriptor(5, kPfns, 4, kDescFNext, 5);  // a loop
  drivers_[0].Publish(5);
  balloon_->QueueNotify(0);
  auto used = WaitUsed(0);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, 5);
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(balloon_->counters().bad_chains, 1u);
  EXPECT_FALSE(balloon_->needs_reset());

  drivers_[1].SetAvailIdx(1000);  // more available than the ring holds
  balloon_->QueueNotify(1);
  EXPECT_TRUE(WaitFor([&] { return balloon_->needs_reset(); }));
  EXPECT_EQ(interrupt_.config_changes, 1);
  balloon_->Reset();
  EXPECT_FALSE(balloon_->needs_reset());
}

TEST_F(BalloonTest, StatsRoundTrip) {
  // Linux posts its first stats buffer before DRIVER_OK; the device takes it at Activate.
  drivers_[2].Configure(queues_[2]);
  uint16_t head =
      PostStats(2, {{kStatFreeMemory, 1000}, {kStatTotalMemory, 4000}, {kStatFreeMemory, 1500}});
  Activate();
  ASSERT_TRUE(WaitFor([&] { return balloon_->counters().stats_updates == 1; }));
  EXPECT_EQ(balloon_->LatestStats(), (Stats{{kStatFreeMemory, 1500}, {kStatTotalMemory, 4000}}));
  EXPECT_FALSE(drivers_[2].NextUsed());  // the device keeps the buffer

  balloon_->RequestStats();
  auto used = WaitUsed(2);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  EXPECT_TRUE(WaitFor([&] { return interrupt_.used[2] == 1; }));
  EXPECT_EQ(balloon_->counters().stats_requests, 1u);

  balloon_->RequestStats();  // nothing held until the driver re-posts
  EXPECT_TRUE(WaitFor([&] { return balloon_->counters().stats_requests_dropped == 1; }));

  PostStats(2, {{kStatSwapIn, 1},
                {kStatSwapOut, 2},
                {kStatMajorFaults, 3},
                {kStatMinorFaults, 4},
                {kStatAvailableMemory, 5},
                {kStatDiskCaches, 6},
                {kStatHugetlbAllocations, 7},
                {kStatHugetlbFailures, 8},
                {42, 9}});
  ASSERT_TRUE(WaitFor([&] { return balloon_->counters().stats_updates == 2; }));
  EXPECT_EQ(balloon_->LatestStats(), (Stats{{kStatSwapIn, 1},
                                            {kStatSwapOut, 2},
                                            {kStatMajorFaults, 3},
                                            {kStatMinorFaults, 4},
                                            {kStatAvailableMemory, 5},
                                            {kStatDiskCaches, 6},
                                            {kStatHugetlbAllocations, 7},
                                            {kStatHugetlbFailures, 8},
                                            {42, 9}}));

  balloon_->Reset();
  EXPECT_TRUE(balloon_->LatestStats().empty());
}

TEST_F(BalloonTest, ASecondStatsBufferReturnsTheFirst) {
  Activate();
  uint16_t first = PostStats(2, {{kStatFreeMemory, 1}});
  ASSERT_TRUE(WaitFor([&] { return balloon_->counters().stats_updates == 1; }));
  PostStats(2, {{kStatFreeMemory, 2}}, kPfns2);
  auto used = WaitUsed(2);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, first);
  EXPECT_EQ(balloon_->counters().stats_buffers_replaced, 1u);
  EXPECT_EQ(balloon_->LatestStats(), (Stats{{kStatFreeMemory, 2}}));
}

TEST_F(BalloonTest, StatsBufferIsBounded) {
  Activate();
  Stats many;
  for (uint16_t tag = 0; tag < 200; ++tag) many.emplace_back(tag, tag);
  PostStats(2, many);
  ASSERT_TRUE(WaitFor([&] { return balloon_->counters().stats_updates == 1; }));
  EXPECT_EQ(balloon_->LatestStats().size(), Balloon::kMaxStats);
}

TEST_F(BalloonTest, FreePageReportingDiscardsReportedRanges) {
  Activate();  // reporting_vq is queue 3 after statsq
  Touch(kRegion1Base, 32 * kPageSize, 0x44);
  uint16_t head = drivers_[3].AddChain(std::vector<TestBuffer>{
      {kRegion1Base, 16 * kPageSize, true},
      {kRegion1Base + 24 * kPageSize, 4 * kPageSize, true},
      {kRegion1Base + 30 * kPageSize + 8, 100, true}});  // not page aligned: refused
  balloon_->QueueNotify(3);
  auto used = WaitUsed(3);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(ResidentPages(kRegion1Base, 16 * kPageSize), 0u);
  EXPECT_EQ(ResidentPages(kRegion1Base + 16 * kPageSize, 8 * kPageSize), 8u);
  EXPECT_EQ(ResidentPages(kRegion1Base + 24 * kPageSize, 4 * kPageSize), 0u);
  EXPECT_EQ(ResidentPages(kRegion1Base + 28 * kPageSize, 4 * kPageSize), 4u);
  BalloonCounters counters = balloon_->counters();
  EXPECT_EQ(counters.reports, 1u);
  EXPECT_EQ(counters.bytes_discarded, 20 * kPageSize);
  EXPECT_EQ(counters.bad_reports, 1u);
}

TEST_F(BalloonTest, ReportingTakesQueueTwoWithoutStats) {
  Activate(kBalloonFPageReporting);
  Touch(kRegion1Base, 4 * kPageSize, 0x55);
  drivers_[2].AddChain(std::vector<TestBuffer>{{kRegion1Base, 4 * kPageSize, true}});
  balloon_->QueueNotify(2);
  ASSERT_TRUE(WaitUsed(2));
  EXPECT_EQ(ResidentPages(kRegion1Base, 4 * kPageSize), 0u);
  EXPECT_EQ(balloon_->counters().reports, 1u);
  EXPECT_EQ(balloon_->counters().stats_updates, 0u);
}

TEST_F(BalloonTest, NotificationsWhileInactiveOrUnknownAreDropped) {
  balloon_->RequestStats();
  EXPECT_EQ(balloon_->counters().stats_requests_dropped, 1u);
  balloon_->QueueNotify(4);
  EXPECT_EQ(balloon_->counters().dropped_notifications, 1u);
  // A driver that set up queue 2 without negotiating statsq or reporting_vq.
  drivers_[2].Configure(queues_[2]);
  ASSERT_TRUE(queues_[2].Activate(memory_));
  drivers_[2].AddChain(std::vector<TestBuffer>{{kPfns, 4, false}});
  Activate(0);  // queues 2 and 3 are absent; the device looks at every queue once
  balloon_->QueueNotify(2);
  EXPECT_TRUE(WaitFor([&] { return balloon_->counters().dropped_notifications >= 2; }));
  EXPECT_FALSE(drivers_[2].NextUsed());
}

TEST_F(BalloonTest, AnIoeventfdKickProcessesTheQueue) {
  Activate();
  Touch(kRegion1Base, kPageSize, 0x66);
  const std::vector<uint32_t> pfns = {Pfn(kRegion1Base)};
  ASSERT_TRUE(memory_.Write(kPfns, {reinterpret_cast<const uint8_t*>(pfns.data()), 4}));
  drivers_[0].AddChain(std::vector<TestBuffer>{{kPfns, 4, false}});
  const uint64_t one = 1;  // what KVM does on a matching guest write
  ASSERT_EQ(::write(balloon_->notify_fd(0), &one, sizeof(one)), 8);
  ASSERT_TRUE(WaitUsed(0));
  EXPECT_EQ(balloon_->counters().pages_inflated, 1u);
}

TEST_F(BalloonTest, ResetStopsProcessingAndActivateAgainWorks) {
  Activate();
  balloon_->Reset();
  PostPfns(0, {Pfn(kRegion1Base)});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(drivers_[0].NextUsed());
  EXPECT_EQ(balloon_->counters().inflate_chains, 0u);
  for (Queue& queue : queues_) queue.Deactivate();
  Activate();  // the chain posted while reset is taken now
  ASSERT_TRUE(WaitUsed(0));
  EXPECT_EQ(balloon_->counters().inflate_chains, 1u);
}

// Snapshot: a fresh device given the saved state and queues keeps the target, actual, the
// held stats buffer (returned on the next request, at the right used index) and the
// statistics, and goes on inflating.
TEST_F(BalloonTest, SavedStateRestoresIntoAFreshDevice) {
  Activate();
  ASSERT_TRUE(balloon_->SetTarget(100));
  const uint32_t actual = 60;
  ASSERT_TRUE(balloon_->WriteConfig(4, {reinterpret_cast<const uint8_t*>(&actual), 4}));
  PostPfns(0, {Pfn(kRegion1Base)});
  ASSERT_TRUE(WaitUsed(0));
  const uint16_t head = PostStats(2, {{kStatFreeMemory, 7}, {kStatTotalMemory, 9}}, kPfns2);
  ASSERT_TRUE(WaitFor([&] { return balloon_->counters().stats_updates == 1; }));

  const BalloonSavedState state = balloon_->SaveState();
  EXPECT_EQ(state.num_pages, 100u);
  EXPECT_EQ(state.actual, 60u);
  EXPECT_EQ(state.stats_head, head);
  EXPECT_EQ(state.stats, (Stats{{kStatFreeMemory, 7}, {kStatTotalMemory, 9}}));
  std::vector<QueueState> saved;
  for (const Queue& queue : queues_) saved.push_back(queue.state());

  balloon_ = *Balloon::Create(BalloonOptions{}, *loop_);  // the old one Reset()s on the way
  ASSERT_TRUE(balloon_->RestoreState(state));
  for (size_t i = 0; i < queues_.size(); ++i) ASSERT_TRUE(queues_[i].Restore(memory_, saved[i]));
  ASSERT_TRUE(
      balloon_->Activate(ActivateContext{memory_, queues_, kAllFeatures | kFVersion1, interrupt_}));
  EXPECT_EQ(balloon_->target(), 100u);
  EXPECT_EQ(balloon_->actual(), 60u);
  EXPECT_EQ(balloon_->LatestStats(), state.stats);
  EXPECT_EQ(balloon_->SaveState(), state);
  balloon_->RequestStats();
  auto used = WaitUsed(2);
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(queues_[2].next_used(), 1);
  PostPfns(0, {Pfn(kRegion1Base) + 1});  // inflate continues at the next ring position
  ASSERT_TRUE(WaitUsed(0));
  EXPECT_EQ(queues_[0].next_used(), 2);
  EXPECT_EQ(balloon_->counters().pages_inflated, 1u);
}

TEST_F(BalloonTest, HostileSavedStatesAreRefused) {
  BalloonSavedState bad_head;
  bad_head.stats_head = Balloon::kQueueSize;
  auto refused = balloon_->RestoreState(bad_head);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("stats buffer head 256"), std::string::npos);
  BalloonSavedState too_many;
  too_many.stats.resize(Balloon::kMaxStats + 1);
  refused = balloon_->RestoreState(too_many);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("65 statistics"), std::string::npos);
  Activate();
  EXPECT_FALSE(balloon_->RestoreState(BalloonSavedState{}));  // not into an active device
}

}  // namespace
}  // namespace vireo::virtio::balloon
