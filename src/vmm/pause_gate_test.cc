#include "vmm/pause_gate.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace vireo {
namespace {

using namespace std::chrono_literals;

// Workers stand in for vCPU threads: they count, and park when the gate closes.
class Workers {
 public:
  Workers(PauseGate& gate, size_t n) : gate_(gate), counts_(n) {
    for (size_t i = 0; i < n; ++i) {
      threads_.emplace_back([this, i] {
        while (!done_.load()) {
          counts_[i].fetch_add(1);
          if (gate_.closing()) gate_.Park();
        }
      });
    }
  }
  ~Workers() {
    done_.store(true);
    gate_.Release();
    for (auto& t : threads_) t.join();
  }
  uint64_t Total() const {
    uint64_t sum = 0;
    for (const auto& c : counts_) sum += c.load();
    return sum;
  }

 private:
  PauseGate& gate_;
  std::vector<std::atomic<uint64_t>> counts_;
  std::atomic<bool> done_{false};
  std::vector<std::thread> threads_;
};

TEST(PauseGateTest, CloseParksEveryParticipantAndOpenLetsThemGo) {
  PauseGate gate;
  Workers workers(gate, 3);
  std::atomic<int> kicks{0};
  ASSERT_TRUE(gate.Close(
      3, [&] { kicks++; }, 2000ms));
  EXPECT_GE(kicks.load(), 1);
  EXPECT_EQ(gate.parked(), 3u);
  const uint64_t frozen = workers.Total();
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(workers.Total(), frozen);  // nothing ran while closed
  gate.Open();
  const auto deadline = std::chrono::steady_clock::now() + 2s;
  while (workers.Total() == frozen && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_GT(workers.Total(), frozen);
}

TEST(PauseGateTest, CloseTimesOutAndReopensWhenAParticipantNeverArrives) {
  PauseGate gate;
  Workers workers(gate, 1);
  auto closed = gate.Close(
      2, [] {}, 50ms);  // only one of two exists
  ASSERT_FALSE(closed);
  EXPECT_NE(closed.error().message.find("1 of 2"), std::string::npos) << closed.error().message;
  EXPECT_FALSE(gate.closing());
}

TEST(PauseGateTest, ReleaseEndsAPauseForGood) {
  PauseGate gate;
  Workers workers(gate, 2);
  ASSERT_TRUE(gate.Close(
      2, [] {}, 2000ms));
  gate.Release();
  EXPECT_FALSE(gate.closing());
  EXPECT_FALSE(gate.Close(
      2, [] {}, 50ms));
}

}  // namespace
}  // namespace vireo
