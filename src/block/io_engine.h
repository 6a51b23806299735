// IoEngine: how RawFile runs its system calls asynchronously. Two implementations:
// io_uring (uring_engine.cc) and, where io_uring is unavailable, a pool of worker threads
// doing the same calls synchronously (thread_engine.cc). Internal to src/block.
//
// An engine runs steps: one readv/writev/fdatasync/fallocate each, tagged with the RawFile
// slot that owns it. At most one step per tag is outstanding and tags are < depth, so an
// engine never runs out of room. When a step finishes the engine signals the eventfd it was
// given; Reap() then hands back the results. Not thread-safe: one caller thread.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>

#include "base/result.h"

namespace vireo::block {

struct IoStep {
  enum class Kind : uint8_t { kReadv, kWritev, kFdatasync, kFallocate };
  Kind kind = Kind::kReadv;
  int fallocate_mode = 0;
  uint64_t offset = 0;
  uint64_t length = 0;  // kFallocate
  const iovec* iov = nullptr;
  unsigned iov_count = 0;
};

struct IoCompletion {
  uint32_t tag;
  int32_t result;  // As the system call returns it, or -errno.
};

class IoEngine {
 public:
  // Engines wait for their outstanding steps before they go, so buffers stay valid.
  virtual ~IoEngine() = default;
  virtual const char* name() const = 0;
  // Queues a step. The step's iovec array must stay unchanged until the step completes.
  virtual void Queue(uint32_t tag, const IoStep& step) = 0;
  // Starts every queued step.
  virtual void Kick() = 0;
  // Moves finished steps into out; returns how many.
  virtual size_t Reap(std::span<IoCompletion> out) = 0;
};

// Fails (with the reason) when io_uring is unavailable or lacks an opcode RawFile needs.
Result<std::unique_ptr<IoEngine>> CreateUringEngine(int fd, unsigned depth, int event_fd);
Result<std::unique_ptr<IoEngine>> CreateThreadEngine(int fd, unsigned depth, int event_fd,
                                                     unsigned threads);

}  // namespace vireo::block
