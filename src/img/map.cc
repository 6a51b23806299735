// vireo img map [-f FMT] [--output human|json] FILE
// Walks Image::Map over the whole disk, through the backing chain, and prints what qemu-img
// map prints: in JSON every stretch (present, zero, data, depth, offset), in the human
// format only the stored stretches and the file that holds them.
#include <fmt/format.h>

#include "img/img_command.h"
#include "img/img_open.h"
#include "img/options.h"
#include "img/report.h"

namespace vireo::img {
namespace {

struct MapArgs {
  std::string format;
  std::string output = "human";
  std::string file;
};

Status MapRange(const std::vector<block::Image*>& chain, const std::vector<std::string>& names,
                uint64_t size, std::vector<MapEntry>& out) {
  for (uint64_t offset = 0; offset < size;) {
    auto [e, layer] = VIREO_TRY(MapThrough(chain, offset, size - offset));
    MapEntry entry;
    entry.start = offset;
    entry.length = e.length;
    entry.depth = static_cast<unsigned>(layer);
    entry.filename = names[layer];
    using Kind = block::Extent::Kind;
    if (e.kind == Kind::kUnallocated) {
      entry.zero = true;  // In no layer: reads as zeros, present nowhere.
    } else {
      entry.present = true;
      entry.zero = e.kind == Kind::kZero;
      entry.data = e.kind == Kind::kData;
      if (e.host_offset >= 0) {
        entry.offset = static_cast<uint64_t>(e.host_offset);
      } else if (chain[layer]->format() == "raw") {
        entry.offset = offset;  // A raw file's hole is still at the same place in the file.
      }
    }
    AppendMapEntry(out, std::move(entry));
    offset += e.length;
  }
  return {};
}

Status Map(const MapArgs& args) {
  if (args.output != "human" && args.output != "json") {
    return Fail("--output {}: expected human or json", args.output);
  }
  OpenRequest request;
  request.path = args.file;
  request.format = VIREO_TRY(ParseFormatOption(args.format, "-f"));
  OpenedImage opened = VIREO_TRY(OpenImg(request));
  std::vector<block::Image*> chain = BackingChain(*opened.image);
  std::vector<std::string> names{args.file};
  for (size_t i = 0; i + 1 < chain.size(); ++i) {
    auto* qcow2 = dynamic_cast<block::qcow2::Qcow2Image*>(chain[i]);
    names.push_back(ResolveBackingPath(names.back(), qcow2->header().backing_file));
  }
  std::vector<MapEntry> entries;
  VIREO_TRY_STATUS(MapRange(chain, names, opened.image->size(), entries));
  if (args.output == "json") {
    fmt::print("{}", MapJson(entries));
  } else {
    fmt::print("{}", VIREO_TRY(MapHuman(entries)));
  }
  return {};
}

}  // namespace

Subcommand AddMap(CLI::App& img) {
  auto args = std::make_shared<MapArgs>();
  CLI::App* app = img.add_subcommand("map", "Show where an image's data is stored");
  app->add_option("-f", args->format, "Format: raw or qcow2 (default: probed)");
  app->add_option("--output", args->output, "human (default) or json");
  app->add_option("file", args->file, "Image")->required();
  return {app, [args] {
            auto status = Map(*args);
            return status ? kExitOk : ReportError("map", status.error());
          }};
}

}  // namespace vireo::img
