// The fallback engine, for hosts without io_uring (old kernels, seccomp, io_uring_disabled):
// worker threads run each step as a blocking system call and post the result. Both queues
// hold at most `depth` entries, one per slot, so they are fixed rings that never overflow.
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

#include "base/log.h"
#include "block/io_engine.h"

namespace vireo::block {
namespace {

// A fixed-capacity FIFO; the capacity is set once, before use.
template <typename T>
class Ring {
 public:
  void Reserve(size_t capacity) { items_.resize(capacity); }
  bool empty() const { return count_ == 0; }
  bool Push(const T& item) {
    if (count_ == items_.size()) return false;
    items_[(head_ + count_++) % items_.size()] = item;
    return true;
  }
  T Pop() {
    T item = items_[head_];
    head_ = (head_ + 1) % items_.size();
    --count_;
    return item;
  }

 private:
  std::vector<T> items_;
  size_t head_ = 0;
  size_t count_ = 0;
};

struct PendingStep {
  uint32_t tag;
  IoStep step;
};

class ThreadEngine final : public IoEngine {
 public:
  ThreadEngine(int fd, unsigned depth, int event_fd, unsigned threads);
  ~ThreadEngine() override;

  const char* name() const override { return "worker threads"; }
  void Queue(uint32_t tag, const IoStep& step) override;
  void Kick() override {}  // Queue() already woke a worker.
  size_t Reap(std::span<IoCompletion> out) override;

 private:
  void Work();
  int32_t Execute(const IoStep& step) const;

  const int fd_;
  const int event_fd_;
  std::mutex mu_;
  std::condition_variable work_ready_;
  std::condition_variable idle_;
  Ring<PendingStep> pending_;  // guarded by mu_
  Ring<IoCompletion> done_;    // guarded by mu_
  unsigned busy_ = 0;          // Workers running a step; guarded by mu_.
  bool stopping_ = false;      // guarded by mu_
  std::vector<std::thread> workers_;
};

ThreadEngine::ThreadEngine(int fd, unsigned depth, int event_fd, unsigned threads)
    : fd_(fd), event_fd_(event_fd) {
  pending_.Reserve(depth);
  done_.Reserve(depth);
  for (unsigned i = 0; i < threads; ++i) {
    workers_.emplace_back([this] {
      pthread_setname_np(pthread_self(), "vireo-blk-io");
      Work();
    });
  }
}

ThreadEngine::~ThreadEngine() {
  {
    // Steps already queued still run: their buffers must not be written after we go.
    std::unique_lock lock(mu_);
    idle_.wait(lock, [&] { return pending_.empty() && busy_ == 0; });
    stopping_ = true;
  }
  work_ready_.notify_all();
  for (auto& worker : workers_) worker.join();
}

void ThreadEngine::Queue(uint32_t tag, const IoStep& step) {
  {
    std::lock_guard lock(mu_);
    if (!pending_.Push(PendingStep{tag, step})) {
      Log(LogLevel::kError, "block worker queue overflow: more steps than slots");
      std::abort();  // RawFile keeps one step per slot: a broken invariant.
    }
  }
  work_ready_.notify_one();
}

size_t ThreadEngine::Reap(std::span<IoCompletion> out) {
  std::lock_guard lock(mu_);
  size_t n = 0;
  while (n < out.size() && !done_.empty()) out[n++] = done_.Pop();
  return n;
}

void ThreadEngine::Work() {
  std::unique_lock lock(mu_);
  while (true) {
    work_ready_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
    if (stopping_) return;
    PendingStep item = pending_.Pop();
    ++busy_;
    lock.unlock();
    int32_t result = Execute(item.step);
    lock.lock();
    --busy_;
    done_.Push(IoCompletion{item.tag, result});  // Cannot fail: one entry per slot.
    uint64_t one = 1;
    while (::write(event_fd_, &one, sizeof(one)) < 0 && errno == EINTR) {
    }
    if (pending_.empty() && busy_ == 0) idle_.notify_all();
  }
}

int32_t ThreadEngine::Execute(const IoStep& step) const {
  ssize_t rc = -1;
  do {
    switch (step.kind) {
      case IoStep::Kind::kReadv:
        rc = ::preadv(fd_, step.iov, static_cast<int>(step.iov_count),
                      static_cast<off_t>(step.offset));
        break;
      case IoStep::Kind::kWritev:
        rc = ::pwritev(fd_, step.iov, static_cast<int>(step.iov_count),
                       static_cast<off_t>(step.offset));
        break;
      case IoStep::Kind::kFdatasync:
        rc = ::fdatasync(fd_);
        break;
      case IoStep::Kind::kFallocate:
        rc = ::fallocate(fd_, step.fallocate_mode, static_cast<off_t>(step.offset),
                         static_cast<off_t>(step.length));
        break;
    }
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : static_cast<int32_t>(rc);
}

}  // namespace

Result<std::unique_ptr<IoEngine>> CreateThreadEngine(int fd, unsigned depth, int event_fd,
                                                     unsigned threads) {
  if (threads == 0) return Fail("the block worker pool needs at least one thread");
  return std::unique_ptr<IoEngine>(std::make_unique<ThreadEngine>(fd, depth, event_fd, threads));
}

}  // namespace vireo::block
