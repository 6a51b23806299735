// ImageBackend: makes a synchronous Image an asynchronous BlockBackend. Requests wait in a
// fixed ring of slots; worker threads run them against the Image (which lets data I/O run in
// parallel and serialises its own metadata), and completions come back through an eventfd
// to the owner's thread. So a qcow2 metadata update blocks a worker, never the I/O thread
// and never a vCPU.
#pragma once

#include <array>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "block/backend.h"
#include "block/image.h"

namespace vireo::block {

struct ImageBackendOptions {
  unsigned queue_depth = 128;  // Requests in flight at once.
  unsigned workers = 4;
  bool discard = false;  // Pass guest discards on to the image.
};

class ImageBackend final : public BlockBackend {
 public:
  static Result<std::unique_ptr<ImageBackend>> Create(std::unique_ptr<Image> image,
                                                      const ImageBackendOptions& options = {});
  // Waits for the workers to finish what they are doing; queued requests are dropped.
  ~ImageBackend() override;

  uint64_t size() const override { return image_->size(); }
  bool read_only() const override { return image_->read_only(); }
  bool supports_discard() const override { return options_.discard && !read_only(); }
  bool supports_write_zeroes() const override { return !read_only(); }
  uint32_t alignment() const override { return 1; }
  size_t max_in_flight() const override { return options_.queue_depth; }
  void SetCompletionHandler(BlockCompletionHandler handler) override {
    handler_ = std::move(handler);
  }
  [[nodiscard]] size_t SubmitBatch(std::span<const BlockRequest> requests) override;
  int completion_fd() const override { return event_.fd(); }
  void ProcessCompletions() override;

  Image& image() { return *image_; }

 private:
  struct Slot {
    BlockRequest request;
    std::array<iovec, kMaxSegments> iov{};
    int32_t result = 0;
  };

  ImageBackend(std::unique_ptr<Image> image, const ImageBackendOptions& options, EventFd event);
  void WorkerLoop();
  int32_t Execute(Slot& slot);

  std::unique_ptr<Image> image_;
  ImageBackendOptions options_;
  EventFd event_;
  BlockCompletionHandler handler_;
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_;  // Owner thread only.

  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<uint32_t> pending_;  // Guarded by mutex_; capacity queue_depth.
  size_t pending_head_ = 0;        // Guarded by mutex_.
  std::vector<uint32_t> done_;     // Guarded by mutex_; capacity queue_depth.
  std::vector<uint32_t> reaped_;   // Owner thread only.
  bool stopping_ = false;          // Guarded by mutex_.
  std::vector<std::thread> workers_;
};

}  // namespace vireo::block
