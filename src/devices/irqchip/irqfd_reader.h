// IrqFdReader: the thread that reads irqfds where the interrupt controllers are Vireo's (the
// software CPU, KVM's split irqchip's IOAPIC pins). Each registered eventfd raises its GSI
// through a callback when signalled, as KVM's irqfd would; an optional extra fd (the split
// irqchip's PIT timerfd) is polled on the same thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vireo::irqchip {

class IrqFdReader {
 public:
  // `raise(gsi)` runs on the reader thread for each signal; `extra_fd` (or -1) is polled too,
  // `on_extra` runs when it is readable (it must read it). `name` goes into error messages.
  IrqFdReader(std::string name, std::function<void(uint32_t)> raise, int extra_fd = -1,
              std::function<void()> on_extra = {});
  ~IrqFdReader();  // stops and joins the thread
  IrqFdReader(const IrqFdReader&) = delete;
  IrqFdReader& operator=(const IrqFdReader&) = delete;

  // Starts the thread (Add does it too, the first time).
  Status Start();
  // Polls a duplicate of `event_fd`, so the caller may close its own.
  Status Add(uint32_t gsi, int event_fd);
  // Returns once the thread no longer polls the fd.
  Status Remove(uint32_t gsi, int event_fd);
  // Raises, on the caller's thread, every irqfd signalled so far that the thread has not
  // raised yet. A snapshot calls it before saving the controllers: an interrupt a device sent
  // just before the pause would otherwise wait in its eventfd and be lost.
  void Drain();

 private:
  Status StartLocked();
  void Wake();
  void Loop();

  const std::string name_;
  const std::function<void(uint32_t)> raise_;
  const int extra_fd_;
  const std::function<void()> on_extra_;

  std::mutex mu_;
  // Held from taking a signal to raising it (the thread and Drain), so after Drain every
  // signal taken before it is raised.
  std::mutex raise_mu_;
  struct IrqFd {
    uint32_t gsi;
    int fd;        // the caller's, for Remove
    UniqueFd own;  // what the thread polls
  };
  std::vector<IrqFd> irqfds_;
  std::condition_variable changed_;
  uint64_t generation_ = 0, generation_seen_ = 0;
  bool stopping_ = false;
  UniqueFd control_;  // wakes the thread to re-read irqfds_ or stop
  std::thread thread_;
};

}  // namespace vireo::irqchip
