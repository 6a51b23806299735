// BlockBackend: what a virtio-blk device sees of a disk image, whatever its format (raw now,
// qcow2 later). Requests are asynchronous: many may be in flight, Submit never blocks, and
// completions are delivered by ProcessCompletions(), which the owner calls on its I/O thread
// when completion_fd() becomes readable (watch it with EventLoop::Add(fd, EPOLLIN, ...)).
//
// Threading: a backend is not thread-safe. Call Submit/SubmitBatch, ProcessCompletions and
// SetCompletionHandler from one thread, normally the event loop thread; the completion
// handler runs there, inside ProcessCompletions, and may Submit more requests.
//
// Hot path: Submit, SubmitBatch and ProcessCompletions neither allocate nor throw.
#pragma once

#include <errno.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

namespace vireo::block {

struct BlockRequest {
  enum class Op : uint8_t { kRead, kWrite, kFlush, kDiscard, kWriteZeroes };

  Op op = Op::kRead;
  // Byte offset into the disk. Unused by kFlush.
  uint64_t offset = 0;
  // kRead/kWrite: the buffers (guest memory spans the device turned into iovecs). The backend
  // copies this array during Submit; the buffers themselves must stay valid until completion.
  std::span<const iovec> iov;
  // kDiscard/kWriteZeroes: how many bytes from offset.
  uint64_t length = 0;
  // Handed back, untouched, to the completion handler.
  void* cookie = nullptr;
};

// result: for kRead/kWrite the request's full byte count (the backend finishes short
// transfers itself), 0 for the other operations, or -errno:
//   -EINVAL  range past the end of the disk, more than kMaxSegments buffers, or a read/write
//            larger than kMaxRequestBytes; nothing was read or written
//   -EROFS   a write, discard or write-zeroes on a read-only backend; nothing was touched
//   -EOPNOTSUPP  discard on a backend opened without discard
//   anything else: the host's error for the I/O (-EIO, -ENOSPC, ...)
using BlockCompletionHandler = std::function<void(void* cookie, int32_t result)>;

class BlockBackend {
 public:
  static constexpr uint64_t kSectorSize = 512;
  // Most buffers one read or write may have; a virtio-blk device advertises seg_max below it.
  static constexpr size_t kMaxSegments = 256;
  // Largest read or write, so the byte count fits the completion's int32_t result.
  static constexpr uint64_t kMaxRequestBytes = 1u << 30;

  virtual ~BlockBackend() = default;

  // The disk's exact size in bytes; it need not be a multiple of kSectorSize. Reads may run
  // past it up to the end of its last sector, and that tail reads as zeros; every other
  // request must end at or before size().
  virtual uint64_t size() const = 0;
  virtual bool read_only() const = 0;
  // Whether kDiscard does anything (it is a hint: the range may or may not read back as zeros).
  virtual bool supports_discard() const = 0;
  // Whether kWriteZeroes is accepted (the range reads back as zeros afterwards).
  virtual bool supports_write_zeroes() const = 0;
  // Alignment, in bytes, that offsets, lengths and buffer addresses need (1 when any will do).
  virtual uint32_t alignment() const = 0;
  // How many requests may be in flight at once; Submit refuses more.
  virtual size_t max_in_flight() const = 0;

  // Called once per accepted request, from ProcessCompletions. Set it before submitting.
  virtual void SetCompletionHandler(BlockCompletionHandler handler) = 0;

  // Queues requests and starts them. Returns how many, from the front, were accepted; the
  // rest found the queue full and should be retried after a completion. An accepted request
  // always completes through the handler, invalid ones included (with -errno).
  [[nodiscard]] virtual size_t SubmitBatch(std::span<const BlockRequest> requests) = 0;
  [[nodiscard]] bool Submit(const BlockRequest& request) {
    return SubmitBatch(std::span<const BlockRequest>(&request, 1)) == 1;
  }

  // Checks a request against a disk of `size` bytes the way every backend must: returns the
  // bytes it covers (the buffers' total for reads and writes, its length otherwise), or the
  // -errno it completes with. Reads may run into the last sector's tail past size.
  static int64_t CheckRequest(const BlockRequest& request, uint64_t size, bool read_only) {
    using Op = BlockRequest::Op;
    const bool writes =
        request.op == Op::kWrite || request.op == Op::kDiscard || request.op == Op::kWriteZeroes;
    if (writes && read_only) return -EROFS;
    uint64_t length = request.length;
    if (request.op == Op::kRead || request.op == Op::kWrite) {
      if (request.iov.size() > kMaxSegments) return -EINVAL;
      length = 0;
      for (const iovec& v : request.iov) {
        if (v.iov_len > kMaxRequestBytes - length) return -EINVAL;
        length += v.iov_len;
      }
    }
    uint64_t limit = size;
    if (request.op == Op::kRead) limit = (size + kSectorSize - 1) / kSectorSize * kSectorSize;
    if (request.op != Op::kFlush && (length > limit || request.offset > limit - length)) {
      return -EINVAL;
    }
    return static_cast<int64_t>(length);
  }

  // An eventfd that becomes readable when completions are waiting.
  virtual int completion_fd() const = 0;
  // Delivers every finished request to the handler. Call it when completion_fd() is readable;
  // calling it at other times is harmless.
  virtual void ProcessCompletions() = 0;
};

}  // namespace vireo::block
