// vireo img commit [-f FMT] [-d] [-p] [-q] FILE
// Copies what the top image stores (its data and its zero clusters) into its backing file,
// then empties the top, as qemu-img commit does: afterwards both read the same, and the top
// is an empty overlay again (see Empty). -d keeps the top's clusters instead.
#include <fmt/format.h>

#include <vector>

#include "img/img_command.h"
#include "img/img_open.h"
#include "img/options.h"
#include "img/progress.h"

namespace vireo::img {
namespace {

constexpr uint64_t kChunk = 2 << 20;

struct CommitArgs {
  std::string format;
  bool keep = false;
  bool progress = false;
  bool quiet = false;
  std::string file;
};

// Empties the top as qemu's make_completely_empty does: the image is written afresh with the
// same header settings (size, cluster size, version, compression, lazy refcounts, backing file
// and format). Image::Discard cannot do it: over a backing file it leaves zero clusters,
// which would hide the base (qemu's guest discards do the same). Internal snapshots would be
// lost that way, so a top that has them keeps its clusters (as with -d) and says so.
Status Empty(OpenedImage& opened, const std::string& path) {
  auto& top = *opened.qcow2;
  if (!VIREO_TRY(top.ListSnapshots()).empty()) {
    fmt::print(stderr, "vireo img commit: '{}' has internal snapshots, so it keeps its clusters\n",
               path);
    return {};
  }
  const auto& h = top.header();
  block::qcow2::CreateOptions options;
  options.size = top.size();
  options.cluster_size = h.cluster_size();
  options.version = static_cast<int>(h.version);
  options.backing_file = h.backing_file;
  options.backing_format = h.backing_format;
  options.compression = h.compression_type;
  options.lazy_refcounts = h.lazy_refcounts();
  opened.qcow2 = nullptr;
  opened.image.reset();  // Closes the top and its base, dropping the lock on both.
  return block::qcow2::Qcow2Image::Create(path, options);
}

Status Commit(const CommitArgs& args) {
  OpenRequest request;
  request.path = args.file;
  request.format = VIREO_TRY(ParseFormatOption(args.format, "-f"));
  request.read_only = args.keep;
  request.backing_read_write = true;
  OpenedImage opened = VIREO_TRY(OpenImg(request));
  block::Image* base = opened.qcow2 != nullptr ? opened.qcow2->backing() : nullptr;
  if (base == nullptr)
    return Fail("'{}' has no backing file: there is nothing to commit to", args.file);
  block::Image& top = *opened.image;
  const uint64_t size = top.size();
  // A top that was grown past its base: the base grows with it, or the tail would be lost.
  if (base->size() < size) VIREO_TRY_STATUS(ToStatus(base->Resize(size)));

  Progress progress(args.progress && !args.quiet, stderr);
  progress.Start(size);
  std::vector<uint8_t> buffer(kChunk);
  for (uint64_t offset = 0; offset < size;) {
    block::Extent e = VIREO_TRY(ToResult(top.Map(offset, std::min(kChunk, size - offset))));
    if (e.length == 0) return Fail("'{}': the image map stalled at offset {}", args.file, offset);
    // depth > 0 is already the base's (or below it); only the top's own clusters move.
    if (e.depth == 0 && e.kind == block::Extent::Kind::kData) {
      auto chunk = std::span(buffer).first(e.length);
      VIREO_TRY_STATUS(ToStatus(top.Read(offset, chunk)));
      VIREO_TRY_STATUS(ToStatus(base->Write(offset, chunk)));
    } else if (e.depth == 0 && e.kind == block::Extent::Kind::kZero) {
      VIREO_TRY_STATUS(ToStatus(base->WriteZeroes(offset, e.length)));
    }
    offset += e.length;
    progress.Add(e.length);
  }
  VIREO_TRY_STATUS(ToStatus(base->Flush()));
  progress.Finish();
  if (!args.keep) VIREO_TRY_STATUS(Empty(opened, args.file));
  if (!args.quiet) fmt::print("Image committed.\n");
  return {};
}

}  // namespace

Subcommand AddCommit(CLI::App& img) {
  auto args = std::make_shared<CommitArgs>();
  CLI::App* app = img.add_subcommand("commit", "Write an overlay's changes into its backing file");
  app->add_option("-f", args->format, "Format (default: probed)");
  app->add_flag("-d", args->keep, "Keep the top image's clusters (do not empty it)");
  app->add_flag("-p", args->progress, "Show progress on stderr");
  app->add_flag("-q", args->quiet, "Quiet");
  app->add_option("file", args->file, "The overlay (top) image")->required();
  return {app, [args] {
            auto status = Commit(*args);
            return status ? kExitOk : ReportError("commit", status.error());
          }};
}

}  // namespace vireo::img
