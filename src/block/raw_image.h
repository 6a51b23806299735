// RawImage: a raw image file as a synchronous Image (the disk is the file's bytes). The
// virtio-blk path uses RawFile (io_uring) instead; RawImage serves `vireo img` and raw
// backing files of qcow2 images.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "block/image.h"

namespace vireo::block {

class RawImage final : public Image {
 public:
  static Result<std::unique_ptr<RawImage>> Open(const std::string& path, bool read_only,
                                                bool lock = true);
  // Creates (or truncates) path as a sparse raw image of size bytes.
  static Status Create(const std::string& path, uint64_t size);

  std::string_view format() const override { return "raw"; }
  uint64_t size() const override { return size_; }
  bool read_only() const override { return read_only_; }
  IoStatus Read(uint64_t offset, std::span<uint8_t> out) override;
  IoStatus Write(uint64_t offset, std::span<const uint8_t> data) override;
  IoStatus WriteZeroes(uint64_t offset, uint64_t length) override;
  IoStatus Discard(uint64_t offset, uint64_t length) override;
  IoStatus Flush() override;
  IoStatus Resize(uint64_t new_size) override;
  tl::expected<Extent, IoError> Map(uint64_t offset, uint64_t max_length) override;
  uint64_t allocated_bytes() const override;

 private:
  RawImage(std::string path, UniqueFd fd, uint64_t size, bool read_only, bool block_device)
      : path_(std::move(path)),
        fd_(std::move(fd)),
        size_(size),
        read_only_(read_only),
        block_device_(block_device) {}

  std::string path_;
  UniqueFd fd_;
  uint64_t size_;
  bool read_only_;
  bool block_device_;
};

}  // namespace vireo::block
