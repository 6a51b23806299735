#include <gtest/gtest.h>

#include <thread>

#include "mgmt/events.h"

namespace vireo::mgmt {
namespace {

using namespace std::chrono_literals;

TEST(EventLog, WaitReturnsOnlyNewerEvents) {
  EventLog log;
  log.Emit("a", "started", "booted");
  log.Emit("a", "paused", "user");
  auto all = log.Wait(0, 0ms);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].seq, 1u);
  EXPECT_EQ(all[1].type, "paused");
  auto newer = log.Wait(1, 0ms);
  ASSERT_EQ(newer.size(), 1u);
  EXPECT_EQ(newer[0].seq, 2u);
}

TEST(EventLog, LongPollWakesOnEmitAndTimesOut) {
  EventLog log;
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(log.Wait(0, 50ms).empty());
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 50ms);
  std::thread emitter([&] {
    std::this_thread::sleep_for(20ms);
    log.Emit("b", "crashed", "killed by signal 9");
  });
  auto t1 = std::chrono::steady_clock::now();
  auto got = log.Wait(0, 5000ms);
  emitter.join();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].detail, "killed by signal 9");
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 2000ms);
}

TEST(EventLog, KeepsABoundedHistory) {
  EventLog log;
  for (size_t i = 0; i < EventLog::kCapacity + 10; ++i) log.Emit("c", "defined", "");
  auto all = log.Wait(0, 0ms);
  EXPECT_EQ(all.size(), EventLog::kCapacity);
  EXPECT_EQ(all.front().seq, 11u);
  EXPECT_EQ(log.last_seq(), EventLog::kCapacity + 10);
}

}  // namespace
}  // namespace vireo::mgmt
