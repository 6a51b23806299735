// vireo img info [-f FMT] [--output human|json] [--backing-chain] FILE
// Without --backing-chain the backing file is not opened, so info works on an image whose
// backing file is missing (the way to find out what it expected).
#include <fmt/format.h>

#include "block/qcow2/format.h"
#include "img/img_command.h"
#include "img/img_open.h"
#include "img/options.h"
#include "img/report.h"

namespace vireo::img {
namespace {

struct InfoArgs {
  std::string format;
  std::string output = "human";
  bool backing_chain = false;
  std::string file;
};

Result<ImageInfo> Describe(block::Image& image, const std::string& filename) {
  ImageInfo info;
  info.filename = filename;
  info.format = std::string(image.format());
  info.virtual_size = image.size();
  info.actual_size = image.allocated_bytes();
  auto* qcow2 = dynamic_cast<block::qcow2::Qcow2Image*>(&image);
  if (qcow2 == nullptr) return info;
  const auto& h = qcow2->header();
  info.cluster_size = h.cluster_size();
  info.dirty = h.dirty();
  info.backing_filename = h.backing_file;
  info.full_backing_filename = ResolveBackingPath(filename, h.backing_file);
  info.backing_format = h.backing_format;
  info.snapshots = VIREO_TRY(qcow2->ListSnapshots());
  Qcow2Specific q;
  q.version = static_cast<int>(h.version);
  q.compression_type = h.compression_type == block::qcow2::CompressionType::kZstd ? "zstd" : "zlib";
  q.lazy_refcounts = h.lazy_refcounts();
  q.refcount_bits = h.refcount_bits();
  q.corrupt = (h.incompatible_features & block::qcow2::kIncompatCorrupt) != 0;
  q.extended_l2 = (h.incompatible_features & block::qcow2::kIncompatExtendedL2) != 0;
  info.qcow2 = q;
  return info;
}

Status Info(const InfoArgs& args) {
  if (args.output != "human" && args.output != "json") {
    return Fail("--output {}: expected human or json", args.output);
  }
  OpenRequest request;
  request.path = args.file;
  request.format = VIREO_TRY(ParseFormatOption(args.format, "-f"));
  request.open_backing = args.backing_chain;
  OpenedImage opened = VIREO_TRY(OpenImg(request));

  std::vector<ImageInfo> infos;
  std::string filename = args.file;
  for (block::Image* image : BackingChain(*opened.image)) {
    infos.push_back(VIREO_TRY(Describe(*image, filename)));
    filename = infos.back().full_backing_filename;
    if (!args.backing_chain) break;
  }

  if (args.output == "json") {
    if (!args.backing_chain) {
      fmt::print("{}\n", InfoJson(infos.front()).dump(4));
    } else {
      Json list = Json::array();
      for (const auto& info : infos) list.push_back(InfoJson(info));
      fmt::print("{}\n", list.dump(4));
    }
    return {};
  }
  for (size_t i = 0; i < infos.size(); ++i) {
    if (i > 0) fmt::print("\n");
    fmt::print("{}", InfoHuman(infos[i]));
  }
  return {};
}

}  // namespace

Subcommand AddInfo(CLI::App& img) {
  auto args = std::make_shared<InfoArgs>();
  CLI::App* app = img.add_subcommand("info", "Show an image's size, format and snapshots");
  app->add_option("-f", args->format, "Format: raw or qcow2 (default: probed)");
  app->add_option("--output", args->output, "human (default) or json");
  app->add_flag("--backing-chain", args->backing_chain, "Show every image of the backing chain");
  app->add_option("file", args->file, "Image")->required();
  return {app, [args] {
            auto status = Info(*args);
            return status ? kExitOk : ReportError("info", status.error());
          }};
}

}  // namespace vireo::img
