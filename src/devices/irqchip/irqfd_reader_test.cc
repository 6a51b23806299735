#include "devices/irqchip/irqfd_reader.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

namespace vireo::irqchip {
namespace {

// What the reader's thread raised, waited for with a timeout.
struct Raised {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<uint32_t> gsis;
  int extra = 0;

  bool WaitFor(size_t count, int extra_count = 0) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(5),
                       [&] { return gsis.size() >= count && extra >= extra_count; });
  }
};

void Signal(int fd) {
  const uint64_t one = 1;
  ASSERT_EQ(::write(fd, &one, sizeof(one)), 8);
}

TEST(IrqFdReader, EachSignalRaisesItsGsiUntilRemoved) {
  Raised raised;
  UniqueFd a(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)), b(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(a && b);
  {
    IrqFdReader reader("test", [&](uint32_t gsi) {
      std::lock_guard lock(raised.mu);
      raised.gsis.push_back(gsi);
      raised.cv.notify_all();
    });
    ASSERT_TRUE(reader.Add(5, a.get()));
    ASSERT_TRUE(reader.Add(9, b.get()));
    Signal(a.get());
    ASSERT_TRUE(raised.WaitFor(1));
    Signal(b.get());
    ASSERT_TRUE(raised.WaitFor(2));
    EXPECT_EQ(raised.gsis, (std::vector<uint32_t>{5, 9}));
    // After Remove returns the fd is no longer polled: its signals raise nothing, the caller
    // may close it.
    ASSERT_TRUE(reader.Remove(5, a.get()));
    EXPECT_FALSE(reader.Remove(5, a.get())) << "removed twice";
    Signal(a.get());
    Signal(b.get());
    ASSERT_TRUE(raised.WaitFor(3));
    EXPECT_EQ(raised.gsis.back(), 9u);
  }  // the destructor stops the thread
  std::lock_guard lock(raised.mu);
  EXPECT_EQ(raised.gsis.size(), 3u);
}

TEST(IrqFdReader, TheExtraFdIsPolledOnTheSameThread) {
  Raised raised;
  UniqueFd timer(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(timer);
  IrqFdReader reader(
      "test", [](uint32_t) {}, timer.get(),
      [&] {
        uint64_t count;
        [[maybe_unused]] ssize_t n = ::read(timer.get(), &count, sizeof(count));
        std::lock_guard lock(raised.mu);
        ++raised.extra;
        raised.cv.notify_all();
      });
  ASSERT_TRUE(reader.Start());
  Signal(timer.get());
  EXPECT_TRUE(raised.WaitFor(0, 1));
}

// After Drain returns, every signal sent before it has been raised exactly once, whether
// the thread took it or Drain did (a snapshot saves the controllers right after).
TEST(IrqFdReader, AfterDrainEverySignalSentBeforeIsRaised) {
  std::mutex mu;
  int raised = 0;
  UniqueFd fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  ASSERT_TRUE(fd);
  IrqFdReader reader("test", [&](uint32_t gsi) {
    EXPECT_EQ(gsi, 7u);
    std::lock_guard lock(mu);
    ++raised;
  });
  ASSERT_TRUE(reader.Add(7, fd.get()));
  for (int i = 1; i <= 200; ++i) {
    Signal(fd.get());
    reader.Drain();
    std::lock_guard lock(mu);
    ASSERT_EQ(raised, i) << "signal " << i << " not raised (or raised twice) when Drain returned";
  }
  uint64_t count = 0;
  EXPECT_NE(::read(fd.get(), &count, sizeof(count)), 8) << "a count was left in the eventfd";
}

}  // namespace
}  // namespace vireo::irqchip
