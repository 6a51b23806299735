// Opening a disk image by path: the format is probed from the file's first bytes unless the
// user names it, and a file the user called raw is never read as anything else.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "base/result.h"
#include "block/backend.h"
#include "block/image.h"
#include "block/raw_file.h"

namespace vireo::block {

enum class ImageFormat : uint8_t { kAuto, kRaw, kQcow2 };

// "raw", "qcow2" (or "auto" for kAuto); anything else is an error listing the choices.
Result<ImageFormat> ParseImageFormat(std::string_view name);
const char* ImageFormatName(ImageFormat format);
// Reads the file's magic: qcow2 when it starts with "QFI\xfb", raw otherwise.
Result<ImageFormat> ProbeImageFormat(const std::string& path);

struct ImageOpenOptions {
  ImageFormat format = ImageFormat::kAuto;
  bool read_only = false;
  CacheMode cache = CacheMode::kWriteback;
  // Guest discards free space in the image (hole punches for raw, freed clusters for qcow2).
  bool discard = false;
  // Advisory lock on the file (exclusive when writable) against a second writer.
  bool lock = true;
  // qcow2: open the backing chain too (false for `vireo img info` on a broken chain).
  bool open_backing = true;
};

// A synchronous Image (for `vireo img`, backing files and ImageBackend).
Result<std::unique_ptr<Image>> OpenImage(const std::string& path,
                                         const ImageOpenOptions& options = {});

// An asynchronous BlockBackend for a virtio-blk device: RawFile (io_uring) for raw images,
// ImageBackend over the format's Image for the rest.
Result<std::unique_ptr<BlockBackend>> OpenDiskBackend(const std::string& path,
                                                      const ImageOpenOptions& options = {});

}  // namespace vireo::block
