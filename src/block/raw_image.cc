#include "block/raw_image.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <vector>

#include "block/image_file.h"

namespace vireo::block {

Result<std::unique_ptr<RawImage>> RawImage::Open(const std::string& path, bool read_only,
                                                 bool lock) {
  ImageFile file = VIREO_TRY(OpenImageFile(path, {read_only, false, lock}));
  return std::unique_ptr<RawImage>(
      new RawImage(path, std::move(file.fd), file.size, read_only, file.is_block_device));
}

Status RawImage::Create(const std::string& path, uint64_t size) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Fail("creating '{}': {}", path, strerror(errno));
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) < 0) {
    return Fail("creating '{}': setting its size to {} bytes: {}", path, size, strerror(errno));
  }
  return {};
}

IoStatus RawImage::Read(uint64_t offset, std::span<uint8_t> out) {
  if (int err = ReadFully(fd_.get(), out.data(), out.size(), offset)) {
    return IoFail(err, "reading '{}' at {}: {}", path_, offset, strerror(err));
  }
  return {};
}

IoStatus RawImage::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (read_only_) return IoFail(EROFS, "'{}' is open read-only", path_);
  if (int err = WriteFully(fd_.get(), data.data(), data.size(), offset)) {
    return IoFail(err, "writing '{}' at {}: {}", path_, offset, strerror(err));
  }
  return {};
}

IoStatus RawImage::WriteZeroes(uint64_t offset, uint64_t length) {
  if (read_only_) return IoFail(EROFS, "'{}' is open read-only", path_);
  auto off = static_cast<off_t>(offset);
  auto len = static_cast<off_t>(length);
  if (::fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len) == 0 ||
      ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len) == 0) {
    return {};
  }
  std::vector<uint8_t> zeros(std::min<uint64_t>(length, 1 << 20));
  while (length > 0) {
    uint64_t n = std::min<uint64_t>(length, zeros.size());
    if (int err = WriteFully(fd_.get(), zeros.data(), n, offset)) {
      return IoFail(err, "writing zeros to '{}' at {}: {}", path_, offset, strerror(err));
    }
    offset += n;
    length -= n;
  }
  return {};
}

IoStatus RawImage::Discard(uint64_t offset, uint64_t length) {
  if (read_only_) return IoFail(EROFS, "'{}' is open read-only", path_);
  // A hint: a filesystem that cannot punch holes simply keeps the blocks.
  ::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
              static_cast<off_t>(length));
  return {};
}

IoStatus RawImage::Flush() {
  if (read_only_) return {};
  if (::fdatasync(fd_.get()) < 0) {
    return IoFail(errno, "flushing '{}': {}", path_, strerror(errno));
  }
  return {};
}

IoStatus RawImage::Resize(uint64_t new_size) {
  if (read_only_) return IoFail(EROFS, "'{}' is open read-only", path_);
  if (block_device_) return IoFail(ENOTSUP, "'{}' is a block device: it cannot be resized", path_);
  if (::ftruncate(fd_.get(), static_cast<off_t>(new_size)) < 0) {
    return IoFail(errno, "resizing '{}' to {} bytes: {}", path_, new_size, strerror(errno));
  }
  size_ = new_size;
  return {};
}

tl::expected<Extent, IoError> RawImage::Map(uint64_t offset, uint64_t max_length) {
  Extent extent;
  extent.length = max_length;
  extent.host_offset = static_cast<int64_t>(offset);
  if (block_device_) return extent;
  const auto off = static_cast<off_t>(offset);
  off_t data = ::lseek(fd_.get(), off, SEEK_DATA);
  if (data < 0 && errno != ENXIO) return extent;  // No SEEK_DATA here: call it all data.
  if (data < 0 || data > off) {  // A hole, to the next data or the end of the file.
    extent.kind = Extent::Kind::kZero;
    extent.host_offset = -1;
    if (data > off) extent.length = std::min<uint64_t>(max_length, data - off);
    return extent;
  }
  off_t hole = ::lseek(fd_.get(), off, SEEK_HOLE);
  if (hole > off) extent.length = std::min<uint64_t>(max_length, hole - off);
  return extent;
}

uint64_t RawImage::allocated_bytes() const {
  struct stat st;
  if (::fstat(fd_.get(), &st) < 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace vireo::block
