// vireo img resize [-f FMT] [--shrink] [-q] FILE [+|-]SIZE
// As qemu-img resize: "+1G" grows, "-1G" shrinks (after "--" or not: the size is always the
// last argument), and shrinking needs --shrink because it drops data.
#include <fmt/format.h>

#include "img/img_command.h"
#include "img/img_open.h"
#include "img/options.h"

namespace vireo::img {
namespace {

struct ResizeArgs {
  std::string format;
  bool shrink = false;
  bool quiet = false;
};

Status Resize(const ResizeArgs& args, const std::vector<std::string>& extras) {
  std::vector<std::string> words;
  bool shrink = args.shrink;
  bool quiet = args.quiet;
  for (const auto& word : extras) {
    if (word == "--shrink") {
      shrink = true;
    } else if (word == "-q") {
      quiet = true;
    } else if (word != "--") {
      words.push_back(word);
    }
  }
  if (words.size() != 2) return Fail("expected FILE and [+|-]SIZE, e.g. `disk.qcow2 +10G`");
  OpenRequest request;
  request.path = words[0];
  request.format = VIREO_TRY(ParseFormatOption(args.format, "-f"));
  request.read_only = false;
  request.open_backing = false;  // Resizing touches this file only.
  OpenedImage opened = VIREO_TRY(OpenImg(request));
  const uint64_t current = opened.image->size();
  const uint64_t size = VIREO_TRY(ParseResizeSize(words[1], current));
  if (size < current && !shrink) {
    return Fail("shrinking from {} to {} bytes drops data: add --shrink if that is what you want",
                current, size);
  }
  VIREO_TRY_STATUS(ToStatus(opened.image->Resize(size)));
  VIREO_TRY_STATUS(ToStatus(opened.image->Flush()));
  if (!quiet) fmt::print("Image resized.\n");
  return {};
}

}  // namespace

Subcommand AddResize(CLI::App& img) {
  auto args = std::make_shared<ResizeArgs>();
  CLI::App* app = img.add_subcommand("resize", "Grow or shrink an image's virtual size");
  app->add_option("-f", args->format, "Format (default: probed)");
  app->add_flag("--shrink", args->shrink, "Allow making the image smaller");
  app->add_flag("-q", args->quiet, "Quiet");
  // FILE and SIZE are taken from what CLI11 leaves over, because "-1G" is a size, not an
  // option, and qemu-img takes it with or without "--" before it.
  // CLI11 stops at the first word it does not know and leaves the rest, "--" included.
  app->prefix_command();
  app->footer("Positionals: FILE [+|-]SIZE");
  return {app, [args, app] {
            auto status = Resize(*args, app->remaining());
            return status ? kExitOk : ReportError("resize", status.error());
          }};
}

}  // namespace vireo::img
