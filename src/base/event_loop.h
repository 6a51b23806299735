// EventLoop: an epoll loop on its own thread (the "I/O thread") that runs fd handlers and
// posted work. EventFd: an owned, non-blocking eventfd used to wake one thread from another.
//
// Threading contract:
//  - Handlers and posted work run on the loop thread only, one at a time.
//  - Add/Modify/Remove/Post may be called from any thread, including from a handler.
//  - Remove(fd) called from another thread while the loop runs waits until that fd's handler
//    is not running; when it returns the handler will not be called again and has been
//    destroyed. Do not call it from another thread while holding a lock the handler takes.
//    Called on the loop thread (from a handler, even the fd's own) it never waits.
//  - Stop() joins the thread (idempotent). Called on the loop thread it only asks the loop to
//    end after the current handler; a later Stop() or the destructor on another thread joins.
#pragma once

#include <sys/epoll.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vireo {

class EventFd {
 public:
  // A non-blocking, close-on-exec eventfd with a zero count.
  static Result<EventFd> Create();

  EventFd() = default;  // Holds no fd; fd() is -1.
  EventFd(EventFd&&) noexcept = default;
  EventFd& operator=(EventFd&&) noexcept = default;

  int fd() const { return fd_.get(); }
  bool valid() const { return fd_.valid(); }
  // Adds count to the counter, waking a reader. Never blocks (a saturated counter is left as is).
  void Signal(uint64_t count = 1) const;
  // Reads and resets the counter; returns 0 when it was already zero. Never blocks.
  uint64_t Drain() const;

 private:
  explicit EventFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

class EventLoop {
 public:
  using Handler = std::function<void(uint32_t events)>;
  using Work = std::function<void()>;
  static constexpr size_t kDefaultPostCapacity = 1024;

  // name: the thread's name (up to 15 characters are kept). post_capacity: how many posted
  // work items may wait at once; Post() refuses more (the queue is bounded, rule 3).
  static Result<std::unique_ptr<EventLoop>> Create(std::string name = "vireo-io",
                                                   size_t post_capacity = kDefaultPostCapacity);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // Starts the loop thread. Fails if it is already running. May be called again after Stop().
  Status Start();
  // Ends the loop and joins its thread. Work posted before Stop() still runs first.
  void Stop();
  // True from Start() until Stop() has joined the thread.
  bool running() const { return running_.load(); }
  bool InLoopThread() const { return std::this_thread::get_id() == loop_thread_id_.load(); }

  // Watches fd for `events` (EPOLLIN, EPOLLOUT, EPOLLET, ...); handler(ready events) runs on
  // the loop thread. The caller keeps owning fd and must Remove() it before closing it.
  Status Add(int fd, uint32_t events, Handler handler);
  Status Modify(int fd, uint32_t events);
  Status Remove(int fd);

  // Queues work for the loop thread and wakes it. Returns false, dropping nothing already
  // queued, when post_capacity items are waiting. Work queued while the loop is stopped runs
  // after the next Start(), or is destroyed unrun with the loop.
  [[nodiscard]] bool Post(Work work);

 private:
  struct Entry {
    int fd;
    Handler handler;
  };
  static constexpr uint64_t kWakeId = 0;

  EventLoop(UniqueFd epoll, EventFd wake, std::string name, size_t post_capacity);
  void Run();
  void Dispatch(uint64_t id, uint32_t events);
  // Runs the work queued when it is called (not work those items post), so fds are not starved.
  void RunPosted();

  UniqueFd epoll_;
  EventFd wake_;
  std::string name_;
  std::thread thread_;
  std::atomic<std::thread::id> loop_thread_id_{};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> running_{false};
  std::mutex lifecycle_mu_;  // serialises Start() and Stop()

  std::mutex mu_;
  std::condition_variable handler_done_;
  std::unordered_map<uint64_t, std::shared_ptr<Entry>> entries_;  // guarded by mu_
  std::unordered_map<int, uint64_t> ids_by_fd_;                   // guarded by mu_
  uint64_t next_id_ = kWakeId + 1;                                // guarded by mu_
  uint64_t dispatching_id_ = kWakeId;                             // guarded by mu_

  std::mutex post_mu_;
  std::vector<Work> posted_;  // ring of post_capacity slots; guarded by post_mu_
  size_t post_head_ = 0;      // guarded by post_mu_
  size_t post_count_ = 0;     // guarded by post_mu_
};

}  // namespace vireo
