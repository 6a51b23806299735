// Image: a disk image of any format seen as a synchronous array of bytes. `vireo img` works on
// Images, qcow2 reads its backing file through one, and ImageBackend (image_backend.h) runs
// an Image's calls on worker threads to make it an asynchronous BlockBackend for virtio-blk.
//
// Threading: an Image may be called from several threads at once; each implementation
// serialises what must be serialised (qcow2 metadata) and lets data I/O run in parallel.
// Overlapping requests in flight together complete in some order, as on a real disk.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vireo::block {

// How a stretch of the disk is backed, for `vireo img map` and sparse-aware convert.
struct Extent {
  enum class Kind : uint8_t {
    kData,         // Stored in this image.
    kZero,         // Reads as zeros without storing them (a zero cluster, a hole in raw).
    kUnallocated,  // Not in this image: from the backing file, or zeros when there is none.
  };
  Kind kind = Kind::kData;
  uint64_t length = 0;  // Bytes from the queried offset with this kind (> 0).
  // kData in a plain (not compressed) cluster: where the bytes are in the image file; else -1.
  int64_t host_offset = -1;
  bool compressed = false;
  // Which layer holds the bytes: 0 this image, 1 its backing file, ...
  unsigned depth = 0;
};

// IoStatus: the result of an Image call; the error carries errno for the guest's status.
struct IoError {
  int err = 0;  // A positive errno: EIO, ENOSPC, EINVAL, EROFS, ...
  std::string message;
};
using IoStatus = tl::expected<void, IoError>;

template <typename... Args>
tl::unexpected<IoError> IoFail(int err, fmt::format_string<Args...> format, Args&&... args) {
  return tl::unexpected<IoError>(IoError{err, fmt::format(format, std::forward<Args>(args)...)});
}

class Image {
 public:
  virtual ~Image() = default;

  // "raw" or "qcow2".
  virtual std::string_view format() const = 0;
  // The guest-visible size in bytes.
  virtual uint64_t size() const = 0;
  virtual bool read_only() const = 0;

  // Requests must lie within [0, size()); callers check (ImageBackend does).
  virtual IoStatus Read(uint64_t offset, std::span<uint8_t> out) = 0;
  virtual IoStatus Write(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Afterwards the range reads as zeros; may free space.
  virtual IoStatus WriteZeroes(uint64_t offset, uint64_t length) = 0;
  // A hint: frees space where the format can; the range may read as zeros or as before.
  virtual IoStatus Discard(uint64_t offset, uint64_t length) = 0;
  // Makes every completed write durable.
  virtual IoStatus Flush() = 0;
  // Grows or shrinks the disk. New space reads as zeros.
  virtual IoStatus Resize(uint64_t new_size) = 0;
  // How [offset, offset + max_length) starts: the kind of its first byte and how far it lasts.
  virtual tl::expected<Extent, IoError> Map(uint64_t offset, uint64_t max_length) = 0;
  // Bytes the image takes on the host (allocated blocks of its file).
  virtual uint64_t allocated_bytes() const = 0;
};

}  // namespace vireo::block
