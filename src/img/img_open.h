// Opening images for `vireo img`: the format given with -f or probed, qcow2 through
// Qcow2Image itself (the subcommands need its header, snapshots and check), raw through
// RawImage; and the bridge from the block layer's IoError to the Result type.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"
#include "block/image.h"
#include "block/open_image.h"
#include "block/qcow2/qcow2_image.h"

namespace vireo::img {

struct OpenRequest {
  std::string path;
  block::ImageFormat format = block::ImageFormat::kAuto;
  bool read_only = true;
  bool open_backing = true;
  bool backing_read_write = false;  // `commit` writes into the backing file.
};

struct OpenedImage {
  std::unique_ptr<block::Image> image;
  block::qcow2::Qcow2Image* qcow2 = nullptr;  // The same image when it is qcow2, else null.
  block::ImageFormat format = block::ImageFormat::kRaw;
};

Result<OpenedImage> OpenImg(const OpenRequest& request);

// The images of a backing chain, top first (the top itself included).
std::vector<block::Image*> BackingChain(block::Image& top);

// Where [offset, offset + max_length) starts to come from, looking down the chain (top first)
// past every layer that leaves it to its backing file. `layer` indexes chain; an extent still
// kUnallocated is in no layer and reads as zeros.
struct ChainExtent {
  block::Extent extent;
  size_t layer = 0;
};
Result<ChainExtent> MapThrough(const std::vector<block::Image*>& chain, uint64_t offset,
                               uint64_t max_length);

inline Status ToStatus(const block::IoStatus& status) {
  if (!status) return tl::unexpected(Error{status.error().message});
  return {};
}
template <typename T>
Result<T> ToResult(tl::expected<T, block::IoError> value) {
  if (!value) return tl::unexpected(Error{value.error().message});
  return std::move(*value);
}

}  // namespace vireo::img
