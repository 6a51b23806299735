#include "img/img_open.h"

#include "block/raw_image.h"

namespace vireo::img {

using block::ImageFormat;

Result<OpenedImage> OpenImg(const OpenRequest& request) {
  OpenedImage out;
  out.format = request.format;
  if (out.format == ImageFormat::kAuto) {
    out.format = VIREO_TRY(block::ProbeImageFormat(request.path));
  }
  if (out.format == ImageFormat::kQcow2) {
    block::qcow2::OpenOptions options;
    options.read_only = request.read_only;
    options.open_backing = request.open_backing;
    options.backing_read_write = request.backing_read_write;
    auto image = VIREO_TRY(block::qcow2::Qcow2Image::Open(request.path, options));
    out.qcow2 = image.get();
    out.image = std::move(image);
  } else {
    out.image = VIREO_TRY(block::RawImage::Open(request.path, request.read_only));
  }
  return out;
}

std::vector<block::Image*> BackingChain(block::Image& top) {
  std::vector<block::Image*> chain{&top};
  // A chain is finite (Open refuses loops), but bound the walk anyway.
  for (int i = 0; i < 256; ++i) {
    auto* qcow2 = dynamic_cast<block::qcow2::Qcow2Image*>(chain.back());
    if (qcow2 == nullptr || qcow2->backing() == nullptr) break;
    chain.push_back(qcow2->backing());
  }
  return chain;
}

Result<ChainExtent> MapThrough(const std::vector<block::Image*>& chain, uint64_t offset,
                               uint64_t max_length) {
  size_t level = 0;
  for (;;) {
    auto mapped = chain[level]->Map(offset, max_length);
    if (!mapped) return tl::unexpected(Error{mapped.error().message});
    block::Extent e = *mapped;
    if (e.length == 0) return Fail("the image map stalled at offset {}", offset);
    e.length = std::min(e.length, max_length);
    // An image's Map may look down its own chain already (depth > 0), or leave that to us.
    const size_t layer = level + e.depth;
    if (layer >= chain.size()) {
      return Fail("a stretch at offset {} maps to layer {} of a chain of {}", offset, layer,
                  chain.size());
    }
    if (e.kind != block::Extent::Kind::kUnallocated || layer + 1 >= chain.size()) {
      return ChainExtent{e, layer};
    }
    level = layer + 1;
    max_length = e.length;
  }
}

}  // namespace vireo::img
