#include "block/open_image.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <cstring>

#include "block/image_backend.h"
#include "block/qcow2/qcow2_image.h"
#include "block/raw_image.h"

namespace vireo::block {

Result<ImageFormat> ParseImageFormat(std::string_view name) {
  if (name == "raw") return ImageFormat::kRaw;
  if (name == "qcow2") return ImageFormat::kQcow2;
  if (name == "auto" || name.empty()) return ImageFormat::kAuto;
  return Fail("unknown image format '{}': use raw or qcow2", name);
}

const char* ImageFormatName(ImageFormat format) {
  switch (format) {
    case ImageFormat::kRaw:
      return "raw";
    case ImageFormat::kQcow2:
      return "qcow2";
    case ImageFormat::kAuto:
      break;
  }
  return "auto";
}

Result<ImageFormat> ProbeImageFormat(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    // Let the open proper report it with its fix.
    return ImageFormat::kRaw;
  }
  uint8_t magic[4] = {};
  ssize_t n = ::pread(fd.get(), magic, sizeof(magic), 0);
  if (n == 4 && magic[0] == 'Q' && magic[1] == 'F' && magic[2] == 'I' && magic[3] == 0xfb) {
    return ImageFormat::kQcow2;
  }
  return ImageFormat::kRaw;
}

static Result<ImageFormat> Resolve(const std::string& path, ImageFormat format) {
  if (format != ImageFormat::kAuto) return format;
  return ProbeImageFormat(path);
}

Result<std::unique_ptr<Image>> OpenImage(const std::string& path, const ImageOpenOptions& options) {
  ImageFormat format = VIREO_TRY(Resolve(path, options.format));
  if (format == ImageFormat::kQcow2) {
    qcow2::OpenOptions open;
    open.read_only = options.read_only;
    open.lock = options.lock;
    open.open_backing = options.open_backing;
    return std::unique_ptr<Image>(VIREO_TRY(qcow2::Qcow2Image::Open(path, open)));
  }
  return std::unique_ptr<Image>(VIREO_TRY(RawImage::Open(path, options.read_only, options.lock)));
}

Result<std::unique_ptr<BlockBackend>> OpenDiskBackend(const std::string& path,
                                                      const ImageOpenOptions& options) {
  ImageFormat format = VIREO_TRY(Resolve(path, options.format));
  if (format == ImageFormat::kRaw) {
    RawOptions raw;
    raw.read_only = options.read_only;
    raw.cache = options.cache;
    raw.discard = options.discard;
    raw.lock = options.lock;
    return std::unique_ptr<BlockBackend>(VIREO_TRY(RawFile::Open(path, raw)));
  }
  auto image = VIREO_TRY(OpenImage(path, options));
  ImageBackendOptions backend;
  backend.discard = options.discard;
  return std::unique_ptr<BlockBackend>(VIREO_TRY(ImageBackend::Create(std::move(image), backend)));
}

}  // namespace vireo::block
