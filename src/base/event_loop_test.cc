#include "base/event_loop.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

namespace vireo {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<EventLoop> MakeLoop(size_t capacity = EventLoop::kDefaultPostCapacity) {
  auto loop = EventLoop::Create("test-loop", capacity);
  EXPECT_TRUE(loop) << loop.error().message;
  return std::move(*loop);
}

// Runs fn on the loop thread and waits for it.
void RunOnLoop(EventLoop& loop, std::function<void()> fn) {
  std::promise<void> done;
  ASSERT_TRUE(loop.Post([&] {
    fn();
    done.set_value();
  }));
  ASSERT_EQ(done.get_future().wait_for(5s), std::future_status::ready);
}

TEST(EventFd, SignalAndDrainCount) {
  auto efd = EventFd::Create();
  ASSERT_TRUE(efd);
  EXPECT_EQ(efd->Drain(), 0u);
  efd->Signal();
  efd->Signal(2);
  EXPECT_EQ(efd->Drain(), 3u);
  EXPECT_EQ(efd->Drain(), 0u);
}

TEST(EventLoop, PostRunsOnLoopThread) {
  auto loop = MakeLoop();
  ASSERT_TRUE(loop->Start());
  std::promise<std::thread::id> ran;
  ASSERT_TRUE(loop->Post([&] {
    EXPECT_TRUE(loop->InLoopThread());
    ran.set_value(std::this_thread::get_id());
  }));
  auto f = ran.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_NE(f.get(), std::this_thread::get_id());
  EXPECT_FALSE(loop->InLoopThread());
}

TEST(EventLoop, PostIsBoundedAndQueuedWorkRunsAfterStart) {
  auto loop = MakeLoop(4);
  std::atomic<int> runs{0};
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(loop->Post([&] { ++runs; }));
  EXPECT_FALSE(loop->Post([&] { ++runs; }));  // Full: refused, nothing dropped.
  ASSERT_TRUE(loop->Start());
  loop->Stop();  // Runs what was queued before it.
  EXPECT_EQ(runs.load(), 4);
}

TEST(EventLoop, ManyThreadsPost) {
  auto loop = MakeLoop(64);
  ASSERT_TRUE(loop->Start());
  std::atomic<int> runs{0};
  std::vector<std::thread> posters;
  posters.reserve(4);
  for (int t = 0; t < 4; ++t) {
    posters.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) {
        while (!loop->Post([&] { ++runs; })) std::this_thread::yield();
      }
    });
  }
  for (auto& t : posters) t.join();
  loop->Stop();  // Work posted before Stop still runs.
  EXPECT_EQ(runs.load(), 4000);
}

TEST(EventLoop, HandlerSeesReadyFdOnLoopThread) {
  auto loop = MakeLoop();
  auto efd = EventFd::Create();
  ASSERT_TRUE(efd);
  std::promise<uint64_t> got;
  ASSERT_TRUE(loop->Add(efd->fd(), EPOLLIN, [&](uint32_t events) {
    EXPECT_TRUE(events & EPOLLIN);
    EXPECT_TRUE(loop->InLoopThread());
    got.set_value(efd->Drain());
  }));
  ASSERT_TRUE(loop->Start());
  efd->Signal(7);
  auto f = got.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(f.get(), 7u);
  EXPECT_TRUE(loop->Remove(efd->fd()));
}

TEST(EventLoop, AddTwiceAndRemoveUnknownFail) {
  auto loop = MakeLoop();
  auto efd = EventFd::Create();
  ASSERT_TRUE(efd);
  ASSERT_TRUE(loop->Add(efd->fd(), EPOLLIN, [](uint32_t) {}));
  auto again = loop->Add(efd->fd(), EPOLLIN, [](uint32_t) {});
  ASSERT_FALSE(again);
  EXPECT_NE(again.error().message.find("already watched"), std::string::npos);
  EXPECT_TRUE(loop->Remove(efd->fd()));
  EXPECT_FALSE(loop->Remove(efd->fd()));
  EXPECT_FALSE(loop->Add(-1, EPOLLIN, [](uint32_t) {}));
}

TEST(EventLoop, RemoveFromOtherThreadWaitsForRunningHandler) {
  auto loop = MakeLoop();
  auto efd = EventFd::Create();
  ASSERT_TRUE(efd);
  std::promise<void> entered;
  std::atomic<bool> release{false}, finished{false};
  std::atomic<int> calls{0};
  ASSERT_TRUE(loop->Add(efd->fd(), EPOLLIN, [&](uint32_t) {
    efd->Drain();
    if (calls++ == 0) entered.set_value();
    while (!release.load()) std::this_thread::sleep_for(1ms);
    finished = true;
  }));
  ASSERT_TRUE(loop->Start());
  efd->Signal();
  ASSERT_EQ(entered.get_future().wait_for(5s), std::future_status::ready);
  std::thread releaser([&] {
    std::this_thread::sleep_for(50ms);
    release = true;
  });
  ASSERT_TRUE(loop->Remove(efd->fd()));
  EXPECT_TRUE(finished.load());  // Remove returned only after the handler did.
  releaser.join();
  efd->Signal();  // No longer watched: the handler must not run again.
  RunOnLoop(*loop, [] {});
  EXPECT_EQ(calls.load(), 1);
}

TEST(EventLoop, HandlerMayRemoveItself) {
  auto loop = MakeLoop();
  auto efd = EventFd::Create();
  ASSERT_TRUE(efd);
  std::atomic<int> calls{0};
  ASSERT_TRUE(loop->Add(efd->fd(), EPOLLIN, [&](uint32_t) {
    ++calls;
    EXPECT_TRUE(loop->Remove(efd->fd()));  // Level-triggered and not drained: would refire.
  }));
  ASSERT_TRUE(loop->Start());
  efd->Signal();
  std::this_thread::sleep_for(20ms);
  RunOnLoop(*loop, [] {});
  EXPECT_EQ(calls.load(), 1);
}

TEST(EventLoop, AddAndRemoveFromLoopThread) {
  auto loop = MakeLoop();
  ASSERT_TRUE(loop->Start());
  auto efd = EventFd::Create();
  ASSERT_TRUE(efd);
  std::promise<void> fired;
  RunOnLoop(*loop, [&] {
    ASSERT_TRUE(loop->Add(efd->fd(), EPOLLIN, [&](uint32_t) {
      efd->Drain();
      EXPECT_TRUE(loop->Remove(efd->fd()));
      fired.set_value();
    }));
  });
  efd->Signal();
  ASSERT_EQ(fired.get_future().wait_for(5s), std::future_status::ready);
}

TEST(EventLoop, ModifyChangesEvents) {
  auto loop = MakeLoop();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  UniqueFd rd(fds[0]), wr(fds[1]);
  std::atomic<int> writable{0};
  std::promise<void> first;
  ASSERT_TRUE(loop->Add(wr.get(), 0, [&](uint32_t events) {
    if (events & EPOLLOUT && writable++ == 0) first.set_value();
  }));
  ASSERT_TRUE(loop->Start());
  std::this_thread::sleep_for(20ms);
  EXPECT_EQ(writable.load(), 0);  // No events asked for yet.
  ASSERT_TRUE(loop->Modify(wr.get(), EPOLLOUT | EPOLLET));
  ASSERT_EQ(first.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(loop->Remove(wr.get()));
  EXPECT_FALSE(loop->Modify(wr.get(), EPOLLOUT));
}

TEST(EventLoop, StopIsIdempotentAndRestartable) {
  auto loop = MakeLoop();
  EXPECT_FALSE(loop->running());
  loop->Stop();  // Never started: fine.
  ASSERT_TRUE(loop->Start());
  EXPECT_TRUE(loop->running());
  EXPECT_FALSE(loop->Start());  // Already running.
  loop->Stop();
  loop->Stop();
  EXPECT_FALSE(loop->running());
  ASSERT_TRUE(loop->Start());
  RunOnLoop(*loop, [] {});
  // The destructor stops it.
}

TEST(EventLoop, StopFromOtherThreadsAndFromHandler) {
  auto loop = MakeLoop();
  ASSERT_TRUE(loop->Start());
  std::promise<void> stopped_inside;
  ASSERT_TRUE(loop->Post([&] {
    loop->Stop();  // On the loop thread: asks, does not join.
    stopped_inside.set_value();
  }));
  ASSERT_EQ(stopped_inside.get_future().wait_for(5s), std::future_status::ready);
  std::thread a([&] { loop->Stop(); });
  std::thread b([&] { loop->Stop(); });
  a.join();
  b.join();
  EXPECT_FALSE(loop->running());
}

TEST(EventLoop, ConcurrentAddRemoveWhileEventsFire) {
  auto loop = MakeLoop();
  ASSERT_TRUE(loop->Start());
  std::atomic<bool> done{false};
  std::atomic<int> fired{0};
  auto efd = EventFd::Create();
  ASSERT_TRUE(efd);
  std::thread signaller([&] {
    while (!done) efd->Signal();
  });
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(loop->Add(efd->fd(), EPOLLIN, [&](uint32_t) {
      efd->Drain();
      ++fired;
    }));
    std::this_thread::yield();
    ASSERT_TRUE(loop->Remove(efd->fd()));
  }
  // The loop is still healthy: one more registration sees the events.
  std::promise<void> seen;
  std::atomic<bool> once{false};
  ASSERT_TRUE(loop->Add(efd->fd(), EPOLLIN, [&](uint32_t) {
    efd->Drain();
    if (!once.exchange(true)) seen.set_value();
  }));
  EXPECT_EQ(seen.get_future().wait_for(5s), std::future_status::ready);
  ASSERT_TRUE(loop->Remove(efd->fd()));
  done = true;
  signaller.join();
}

}  // namespace
}  // namespace vireo
