#include "base/event_loop.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>

#include <cstdlib>

#include "base/log.h"

namespace vireo {

Result<EventFd> EventFd::Create() {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return Fail("eventfd: {}", strerror(errno));
  return EventFd(UniqueFd(fd));
}

void EventFd::Signal(uint64_t count) const {
  // EAGAIN means the counter is saturated: the reader is already due to wake.
  while (::write(fd_.get(), &count, sizeof(count)) < 0 && errno == EINTR) {
  }
}

uint64_t EventFd::Drain() const {
  uint64_t count = 0;
  while (::read(fd_.get(), &count, sizeof(count)) < 0) {
    if (errno != EINTR) return 0;  // EAGAIN: nothing pending.
  }
  return count;
}

Result<std::unique_ptr<EventLoop>> EventLoop::Create(std::string name, size_t post_capacity) {
  if (post_capacity == 0) return Fail("event loop '{}': post capacity must be at least 1", name);
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) return Fail("event loop '{}': epoll_create1: {}", name, strerror(errno));
  EventFd wake = VIREO_TRY(EventFd::Create());
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeId;
  if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, wake.fd(), &ev) < 0) {
    return Fail("event loop '{}': watching the wake eventfd: {}", name, strerror(errno));
  }
  return std::unique_ptr<EventLoop>(
      new EventLoop(std::move(epoll), std::move(wake), std::move(name), post_capacity));
}

EventLoop::EventLoop(UniqueFd epoll, EventFd wake, std::string name, size_t post_capacity)
    : epoll_(std::move(epoll)), wake_(std::move(wake)), name_(std::move(name)) {
  posted_.resize(post_capacity);
}

EventLoop::~EventLoop() {
  if (InLoopThread()) {
    // Destroying the loop from its own handler would free the state the thread is using.
    Log(LogLevel::kError, "event loop '{}' destroyed on its own thread", name_);
    std::abort();
  }
  Stop();
}

Status EventLoop::Start() {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (thread_.joinable()) return Fail("event loop '{}' is already running", name_);
  stop_requested_.store(false);
  running_.store(true);
  thread_ = std::thread([this] {
    loop_thread_id_.store(std::this_thread::get_id());
    pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
    Run();
    loop_thread_id_.store(std::thread::id());
  });
  return {};
}

void EventLoop::Stop() {
  stop_requested_.store(true);
  wake_.Signal();
  if (InLoopThread()) return;  // Cannot join ourselves; the loop ends after this handler.
  std::lock_guard lifecycle(lifecycle_mu_);
  if (thread_.joinable()) thread_.join();
  running_.store(false);
}

Status EventLoop::Add(int fd, uint32_t events, Handler handler) {
  if (fd < 0) return Fail("event loop '{}': cannot watch invalid fd {}", name_, fd);
  if (!handler) return Fail("event loop '{}': fd {} needs a handler", name_, fd);
  std::lock_guard lock(mu_);
  if (ids_by_fd_.contains(fd)) return Fail("event loop '{}': fd {} is already watched", name_, fd);
  uint64_t id = next_id_++;
  // Insert first so an event that fires at once finds its handler.
  entries_.emplace(id, std::make_shared<Entry>(Entry{fd, std::move(handler)}));
  ids_by_fd_.emplace(fd, id);
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = id;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) < 0) {
    int err = errno;
    entries_.erase(id);
    ids_by_fd_.erase(fd);
    return Fail("event loop '{}': watching fd {}: {}", name_, fd, strerror(err));
  }
  return {};
}

Status EventLoop::Modify(int fd, uint32_t events) {
  std::lock_guard lock(mu_);
  auto it = ids_by_fd_.find(fd);
  if (it == ids_by_fd_.end()) return Fail("event loop '{}': fd {} is not watched", name_, fd);
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = it->second;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) < 0) {
    return Fail("event loop '{}': changing events of fd {}: {}", name_, fd, strerror(errno));
  }
  return {};
}

Status EventLoop::Remove(int fd) {
  std::unique_lock lock(mu_);
  auto it = ids_by_fd_.find(fd);
  if (it == ids_by_fd_.end()) return Fail("event loop '{}': fd {} is not watched", name_, fd);
  uint64_t id = it->second;
  ids_by_fd_.erase(it);
  // A handler running now holds its own reference; events already fetched for this id find
  // no entry and are skipped.
  entries_.erase(id);
  int rc = ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  int err = errno;
  if (!InLoopThread()) {
    handler_done_.wait(lock, [&] { return dispatching_id_ != id; });
  }
  // EBADF: the caller closed the fd first, which already removed it from the epoll set.
  if (rc < 0 && err != EBADF) {
    return Fail("event loop '{}': unwatching fd {}: {}", name_, fd, strerror(err));
  }
  return {};
}

bool EventLoop::Post(Work work) {
  {
    std::lock_guard lock(post_mu_);
    if (post_count_ == posted_.size()) return false;
    posted_[(post_head_ + post_count_) % posted_.size()] = std::move(work);
    ++post_count_;
  }
  wake_.Signal();
  return true;
}

void EventLoop::RunPosted() {
  size_t budget;
  {
    std::lock_guard lock(post_mu_);
    budget = post_count_;
  }
  for (; budget > 0; --budget) {
    Work work;
    {
      std::lock_guard lock(post_mu_);
      if (post_count_ == 0) return;
      work = std::move(posted_[post_head_]);
      posted_[post_head_] = nullptr;
      post_head_ = (post_head_ + 1) % posted_.size();
      --post_count_;
    }
    work();
  }
  std::lock_guard lock(post_mu_);
  if (post_count_ > 0) wake_.Signal();  // Work posted by work: run it on the next turn.
}

void EventLoop::Dispatch(uint64_t id, uint32_t events) {
  std::shared_ptr<Entry> entry;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return;  // Removed after epoll_wait returned.
    entry = it->second;
    dispatching_id_ = id;
  }
  entry->handler(events);
  entry.reset();  // If Remove() ran meanwhile, the handler is destroyed here, before it returns.
  {
    std::lock_guard lock(mu_);
    dispatching_id_ = kWakeId;
  }
  handler_done_.notify_all();
}

void EventLoop::Run() {
  constexpr int kMaxEvents = 64;
  epoll_event events[kMaxEvents];
  while (!stop_requested_.load()) {
    int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "event loop '{}': epoll_wait: {}", name_, strerror(errno));
      std::abort();  // Only a broken epoll fd gets here: a VMM invariant.
    }
    for (int i = 0; i < n && !stop_requested_.load(); ++i) {
      if (events[i].data.u64 == kWakeId) {
        wake_.Drain();
        RunPosted();
      } else {
        Dispatch(events[i].data.u64, events[i].events);
      }
    }
  }
  RunPosted();  // Work posted before Stop() still runs.
}

}  // namespace vireo
