#include "base/deadline_timer.h"

#include <poll.h>
#include <time.h>

#include <gtest/gtest.h>

namespace vireo {
namespace {

uint64_t NowNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return uint64_t(ts.tv_sec) * 1'000'000'000 + uint64_t(ts.tv_nsec);
}

bool Fires(const DeadlineTimer& timer, int timeout_ms) {
  pollfd p{timer.fd(), POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1;
}

TEST(DeadlineTimer, PastAndZeroDeadlinesFireAtOnce) {
  auto timer = DeadlineTimer::Create("a test timer");
  ASSERT_TRUE(timer) << timer.error().message;
  EXPECT_FALSE(Fires(*timer, 0));
  timer->Arm(NowNs() - 1'000'000);
  EXPECT_TRUE(Fires(*timer, 1000));
  timer->Expired();
  EXPECT_FALSE(Fires(*timer, 0));
  timer->Arm(0);  // timerfd would read an all-zero value as "disarm"
  EXPECT_TRUE(Fires(*timer, 1000));
}

TEST(DeadlineTimer, NeverDisarmsAPendingDeadline) {
  auto timer = DeadlineTimer::Create("a test timer");
  ASSERT_TRUE(timer);
  timer->Arm(NowNs() + 20'000'000);
  timer->Arm(DeadlineTimer::kNever);
  EXPECT_FALSE(Fires(*timer, 100));
}

TEST(DeadlineTimer, TheSameDeadlineArmsAgainOnlyAfterExpired) {
  auto timer = DeadlineTimer::Create("a test timer");
  ASSERT_TRUE(timer);
  const uint64_t deadline = NowNs() + 10'000'000;
  timer->Arm(deadline);
  ASSERT_TRUE(Fires(*timer, 1000));
  timer->Expired();
  // Without Expired this Arm would be skipped as unchanged: the timer would stay silent.
  timer->Arm(deadline);
  EXPECT_TRUE(Fires(*timer, 1000));
}

}  // namespace
}  // namespace vireo
