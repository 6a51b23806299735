#include "devices/irqchip/irqfd_reader.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace vireo::irqchip {
namespace {

// Takes an eventfd's count if it has one, without blocking (the thread and Drain may race for
// it; the loser finds it empty).
bool TakeSignal(int fd) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN)) return false;
  uint64_t count = 0;
  return ::read(fd, &count, sizeof(count)) == sizeof(count) && count != 0;
}

}  // namespace

IrqFdReader::IrqFdReader(std::string name, std::function<void(uint32_t)> raise, int extra_fd,
                         std::function<void()> on_extra)
    : name_(std::move(name)),
      raise_(std::move(raise)),
      extra_fd_(extra_fd),
      on_extra_(std::move(on_extra)) {}

IrqFdReader::~IrqFdReader() {
  {
    std::lock_guard lock(mu_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  changed_.notify_all();  // a Remove still waiting gives up
  Wake();
  thread_.join();
}

Status IrqFdReader::Start() {
  std::lock_guard lock(mu_);
  return StartLocked();
}

Status IrqFdReader::StartLocked() {
  if (thread_.joinable()) return {};
  control_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!control_) return Fail("{}: eventfd for the irqfd thread: {}", name_, std::strerror(errno));
  thread_ = std::thread([this] { Loop(); });
  return {};
}

void IrqFdReader::Wake() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(control_.get(), &one, sizeof(one));
}

Status IrqFdReader::Add(uint32_t gsi, int event_fd) {
  UniqueFd own(::fcntl(event_fd, F_DUPFD_CLOEXEC, 0));
  if (!own) return Fail("{}: irqfd {} for GSI {}: {}", name_, event_fd, gsi, std::strerror(errno));
  std::lock_guard lock(mu_);
  VIREO_TRY_STATUS(StartLocked());
  irqfds_.push_back({gsi, event_fd, std::move(own)});
  ++generation_;
  Wake();
  return {};
}

Status IrqFdReader::Remove(uint32_t gsi, int event_fd) {
  std::unique_lock lock(mu_);
  auto it = std::find_if(irqfds_.begin(), irqfds_.end(),
                         [&](const IrqFd& f) { return f.gsi == gsi && f.fd == event_fd; });
  if (it == irqfds_.end()) return Fail("no irqfd is registered for GSI {}", gsi);
  UniqueFd own = std::move(it->own);  // closed once the thread has stopped polling it
  irqfds_.erase(it);
  const uint64_t wanted = ++generation_;
  Wake();
  changed_.wait(lock, [&] { return generation_seen_ >= wanted || stopping_; });
  return {};
}

void IrqFdReader::Drain() {
  std::lock_guard lock(mu_);
  std::lock_guard raise_lock(raise_mu_);
  for (const IrqFd& f : irqfds_) {
    if (TakeSignal(f.own.get())) raise_(f.gsi);
  }
}

void IrqFdReader::Loop() {
  std::vector<pollfd> fds;
  std::vector<uint32_t> gsis;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      fds.assign({pollfd{control_.get(), POLLIN, 0}, pollfd{extra_fd_, POLLIN, 0}});
      gsis.assign(2, 0);
      for (const IrqFd& f : irqfds_) {
        fds.push_back(pollfd{f.own.get(), POLLIN, 0});
        gsis.push_back(f.gsi);
      }
      generation_seen_ = generation_;
    }
    changed_.notify_all();
    // poll() skips a negative fd: no extra fd is the same loop.
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "{}: polling irqfds failed: {}", name_, std::strerror(errno));
      return;
    }
    uint64_t count = 0;
    if (fds[0].revents & POLLIN) {
      [[maybe_unused]] ssize_t n = ::read(fds[0].fd, &count, sizeof(count));
    }
    if ((fds[1].revents & POLLIN) && on_extra_) on_extra_();
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      std::lock_guard raise_lock(raise_mu_);
      if (TakeSignal(fds[i].fd)) raise_(gsis[i]);
    }
  }
}

}  // namespace vireo::irqchip
