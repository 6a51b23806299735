// vireo img create [-f raw|qcow2] [-b BACKING [-F FMT]] [-u] [-o OPTIONS] [-q] FILE [SIZE]
// As qemu-img create: SIZE may be left out when there is a backing file, and is then the
// backing file's size; the backing file is opened to check it unless -u.
#include <fmt/format.h>

#include "block/raw_image.h"
#include "img/img_command.h"
#include "img/img_open.h"
#include "img/options.h"
#include "img/report.h"

namespace vireo::img {
namespace {

struct CreateArgs {
  std::string format = "raw";
  std::string backing;
  std::string backing_format;
  std::vector<std::string> options;
  bool unsafe = false;
  bool quiet = false;
  std::string file;
  std::string size;
};

Status Create(const CreateArgs& args) {
  auto format = VIREO_TRY(ParseFormatOption(args.format, "-f"));
  if (format == block::ImageFormat::kAuto) format = block::ImageFormat::kRaw;
  CreateSettings settings = VIREO_TRY(ParseCreateOptions(JoinOptionTexts(args.options), format));
  auto& q = settings.qcow2;
  if (!args.backing.empty()) q.backing_file = args.backing;
  if (!args.backing_format.empty()) {
    VIREO_TRY(ParseFormatOption(args.backing_format, "-F"));
    q.backing_format = args.backing_format;
  }
  if (format == block::ImageFormat::kRaw && !q.backing_file.empty()) {
    return Fail("-b {}: raw images have no backing file; use -f qcow2", q.backing_file);
  }

  std::optional<uint64_t> size;
  if (!args.size.empty()) size = VIREO_TRY(ParseImgSize(args.size));
  if (settings.size_given) size = settings.size;
  if (!q.backing_file.empty() && (!args.unsafe || !size)) {
    // The backing name is relative to the new image, so open it from there.
    OpenRequest backing;
    backing.path = ResolveBackingPath(args.file, q.backing_file);
    backing.format = VIREO_TRY(ParseFormatOption(q.backing_format, "-F"));
    auto opened = OpenImg(backing);
    if (!opened) {
      return Fail("could not open backing file '{}': {}", q.backing_file, opened.error().message);
    }
    if (!size) size = opened->image->size();
    // Record what the file is, so that opening the new image never has to guess.
    if (q.backing_format.empty()) q.backing_format = block::ImageFormatName(opened->format);
  }
  if (!size) {
    return Fail("missing size: give it after the file name (e.g. 10G), or a backing file (-b)");
  }

  if (format == block::ImageFormat::kRaw) {
    if (!args.quiet) fmt::print("Formatting '{}', fmt=raw size={}\n", args.file, *size);
    return block::RawImage::Create(args.file, *size);
  }
  q.size = *size;
  if (!args.quiet) {
    std::string backing;
    if (!q.backing_file.empty()) {
      backing = fmt::format(" backing_file={}", q.backing_file);
      if (!q.backing_format.empty()) backing += fmt::format(" backing_fmt={}", q.backing_format);
    }
    fmt::print(
        "Formatting '{}', fmt=qcow2 cluster_size={} extended_l2=off compression_type={} size={}"
        "{} lazy_refcounts={} refcount_bits=16\n",
        args.file, q.cluster_size,
        q.compression == block::qcow2::CompressionType::kZstd ? "zstd" : "zlib", *size, backing,
        q.lazy_refcounts ? "on" : "off");
  }
  return block::qcow2::Qcow2Image::Create(args.file, q);
}

}  // namespace

Subcommand AddCreate(CLI::App& img) {
  auto args = std::make_shared<CreateArgs>();
  CLI::App* app = img.add_subcommand("create", "Create a new, empty disk image");
  app->add_option("-f", args->format, "Format: raw (default) or qcow2");
  app->add_option("-b", args->backing, "Backing file (qcow2), relative to the new image");
  app->add_option("-F", args->backing_format, "Backing file format: raw or qcow2");
  app->add_option("-o", args->options,
                  "Options: cluster_size=64k, compression_type=zlib|zstd, compat=0.10|1.1, "
                  "lazy_refcounts=on|off")
      ->allow_extra_args(false);
  app->add_flag("-u", args->unsafe, "Do not open the backing file (SIZE is then required)");
  app->add_flag("-q", args->quiet, "Print nothing on success");
  app->add_option("file", args->file, "Image to create")->required();
  app->add_option("size", args->size, "Virtual size, e.g. 10G (default: the backing file's)");
  return {app, [args] {
            auto status = Create(*args);
            return status ? kExitOk : ReportError("create", status.error());
          }};
}

}  // namespace vireo::img
