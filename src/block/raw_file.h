// RawFile: a raw disk image (a regular file or a block device) as a BlockBackend. The disk is
// the file's bytes, nothing more. I/O runs on io_uring, or on worker threads where io_uring is
// unavailable; both sit behind io_engine.h and behave the same to the caller.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/event_loop.h"
#include "base/mapping.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "block/backend.h"
#include "block/io_engine.h"

namespace vireo::block {

enum class CacheMode {
  kWriteback,  // The host page cache holds writes until a flush.
  kNone,       // O_DIRECT: bypass the page cache. Requests must then be alignment()-aligned.
};

enum class EngineKind {
  kAuto,     // io_uring, else worker threads (logged as a warning).
  kIoUring,  // io_uring or fail.
  kThreads,  // Worker threads always (tests; hosts where io_uring is unwanted).
};

struct RawOptions {
  bool read_only = false;
  CacheMode cache = CacheMode::kWriteback;
  // Pass guest discards to the host as hole punches, freeing space in the image.
  bool discard = false;
  unsigned queue_depth = 128;  // Requests in flight at once: 1 to kMaxQueueDepth.
  EngineKind engine = EngineKind::kAuto;
  unsigned worker_threads = 4;  // For the worker-thread engine.
  // Take an advisory lock (exclusive when writable, shared when read-only) so a second VMM
  // cannot open the same image for writing.
  bool lock = true;
  // Do write-zeroes by writing zero buffers even where fallocate could (tests use it).
  bool write_zeroes_by_writing = false;
};

class RawFile final : public BlockBackend {
 public:
  static constexpr unsigned kMaxQueueDepth = 4096;

  // Errors name the fix: a missing file, no permission, a directory, O_DIRECT refused, an
  // image locked by another process.
  static Result<std::unique_ptr<RawFile>> Open(const std::string& path,
                                               const RawOptions& options = {});
  // Waits for requests still in flight (their handlers are not called).
  ~RawFile() override;

  uint64_t size() const override { return size_; }
  bool read_only() const override { return options_.read_only; }
  bool supports_discard() const override { return options_.discard && !options_.read_only; }
  bool supports_write_zeroes() const override { return !options_.read_only; }
  uint32_t alignment() const override { return alignment_; }
  size_t max_in_flight() const override { return options_.queue_depth; }
  void SetCompletionHandler(BlockCompletionHandler handler) override {
    handler_ = std::move(handler);
  }
  [[nodiscard]] size_t SubmitBatch(std::span<const BlockRequest> requests) override;
  int completion_fd() const override { return event_.fd(); }
  void ProcessCompletions() override;

  const std::string& path() const { return path_; }
  const char* engine_name() const { return engine_->name(); }

 private:
  // How write-zeroes is done; each falls back to the next when the host says EOPNOTSUPP.
  enum class ZeroMethod : uint8_t { kZeroRange, kPunchHole, kWriteBuffers };
  struct Slot {
    void* cookie = nullptr;
    BlockRequest::Op op = BlockRequest::Op::kRead;
    uint64_t offset = 0;     // Where the next step starts.
    uint64_t remaining = 0;  // Bytes still to transfer or zero.
    uint64_t total = 0;      // Byte count reported for a read or write.
    unsigned iov_first = 0;
    unsigned iov_count = 0;
    ZeroMethod zero_method = ZeroMethod::kZeroRange;
    int32_t immediate_result = 0;
    std::array<iovec, kMaxSegments> iov{};
  };
  static constexpr size_t kReapBatch = 64;

  RawFile(std::string path, const RawOptions& options, UniqueFd fd, uint64_t size,
          uint32_t alignment, EventFd event, Mapping zero_buffer, std::unique_ptr<IoEngine> engine);
  // Starts a request; returns its result at once when it needs no I/O (or is invalid).
  std::optional<int32_t> Start(uint32_t tag, const BlockRequest& request);
  void QueueTransfer(uint32_t tag);
  void QueueZeroStep(uint32_t tag);
  void OnStepDone(uint32_t tag, int32_t result);
  void FinishReadAtEof(uint32_t tag);
  void Finish(uint32_t tag, int32_t result);

  std::string path_;
  RawOptions options_;
  UniqueFd fd_;
  uint64_t size_;
  uint32_t alignment_;
  EventFd event_;
  Mapping zero_buffer_;  // Read-only zeros for write-zeroes by writing.
  BlockCompletionHandler handler_;
  ZeroMethod zero_method_ = ZeroMethod::kZeroRange;  // Best method the host has not refused.
  bool discard_works_ = true;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;       // Free slot tags; capacity queue_depth.
  std::vector<uint32_t> immediate_;  // Slots finished without I/O; capacity queue_depth.
  std::array<IoCompletion, kReapBatch> reaped_{};
  std::unique_ptr<IoEngine> engine_;  // Last: destroyed first, waiting for in-flight steps.
};

}  // namespace vireo::block
