// vireo img check [-f FMT] [-r leaks|all] [--output human|json] [-q] FILE
// Exit status as qemu-img check: 0 clean, 2 corruptions, 3 leaked clusters only, 1 when the
// check itself failed, 63 for a format without checks (raw).
#include <fmt/format.h>

#include "img/img_command.h"
#include "img/img_open.h"
#include "img/options.h"
#include "img/report.h"

namespace vireo::img {
namespace {

constexpr int kExitNotSupported = 63;

struct CheckArgs {
  std::string format;
  std::string repair;
  std::string output = "human";
  bool quiet = false;
  std::string file;
};

// The image's own stored clusters in guest order, from Map, for the fragmentation figure
// (Qcow2Image::Check counts references, not layout).
Result<uint64_t> Fragmented(block::qcow2::Qcow2Image& image) {
  std::vector<StoredRun> runs;
  const uint64_t size = image.size();
  for (uint64_t offset = 0; offset < size;) {
    block::Extent e = VIREO_TRY(ToResult(image.Map(offset, size - offset)));
    if (e.length == 0) return Fail("the image map stalled at offset {}", offset);
    if (e.kind == block::Extent::Kind::kData && e.depth == 0) {
      runs.push_back({offset, e.length, e.compressed ? -1 : e.host_offset});
    }
    offset += e.length;
  }
  const uint64_t cluster = image.cluster_size();
  return CountFragmented(runs, cluster, cluster / 8 * cluster);
}

Result<CheckReport> RunCheck(block::qcow2::Qcow2Image& image, const std::string& file, bool repair,
                             bool repair_errors, bool print_problems,
                             block::qcow2::CheckResult* raw) {
  block::qcow2::CheckResult result = VIREO_TRY(image.Check(repair, repair_errors));
  if (print_problems) {
    for (const auto& line : result.messages) fmt::print(stderr, "{}\n", line);
  }
  CheckReport report;
  report.filename = file;
  report.format = "qcow2";
  report.corruptions = result.corruptions;
  report.leaks = result.leaks - std::min(result.leaks, result.leaks_fixed);
  report.allocated_clusters = result.allocated_clusters;
  report.total_clusters = result.total_clusters;
  report.compressed_clusters = result.compressed_clusters;
  report.image_end_offset = result.image_end_offset;
  report.fragmented_clusters = VIREO_TRY(Fragmented(image));
  if (raw != nullptr) *raw = result;
  return report;
}

int Check(const CheckArgs& args) {
  auto fail = [](const Error& e) { return ReportError("check", e); };
  if (args.output != "human" && args.output != "json") {
    return fail(Error{fmt::format("--output {}: expected human or json", args.output)});
  }
  bool repair = false;
  bool repair_errors = false;
  if (args.repair == "leaks" || args.repair == "all") {
    repair = true;
    repair_errors = args.repair == "all";  // Refcounts too low and OFLAG_COPIED, as qemu-img.
  } else if (!args.repair.empty()) {
    return fail(Error{fmt::format("-r {}: expected leaks or all", args.repair)});
  }
  OpenRequest request;
  request.path = args.file;
  auto format = ParseFormatOption(args.format, "-f");
  if (!format) return fail(format.error());
  request.format = *format;
  request.read_only = !repair;
  request.open_backing = false;  // The check is about this file; a lost backing file is not.
  auto opened = OpenImg(request);
  if (!opened) return fail(opened.error());
  if (opened->qcow2 == nullptr) {
    fmt::print(stderr, "vireo img check: This image format does not support checks\n");
    return kExitNotSupported;
  }
  block::qcow2::CheckResult first;
  auto report = RunCheck(*opened->qcow2, args.file, repair, repair_errors, !args.quiet, &first);
  if (!report) return fail(Error{"Check failed: " + report.error().message});
  if (repair && (first.leaks_fixed > 0 || first.corruptions_fixed > 0)) {
    if (args.output == "human" && !args.quiet) {
      fmt::print("{}", RepairHuman(first.leaks_fixed, first.corruptions_fixed));
    }
    report = RunCheck(*opened->qcow2, args.file, false, false, !args.quiet, nullptr);
    if (!report) return fail(Error{"Check failed: " + report.error().message});
  }
  if (args.output == "json") {
    fmt::print("{}\n", CheckJson(*report).dump(4));
  } else if (!args.quiet) {
    fmt::print("{}", CheckHuman(*report));
  }
  return CheckExitCode(*report);
}

}  // namespace

Subcommand AddCheck(CLI::App& img) {
  auto args = std::make_shared<CheckArgs>();
  CLI::App* app = img.add_subcommand("check", "Check a qcow2 image's metadata for errors");
  app->add_option("-f", args->format, "Format: raw or qcow2 (default: probed)");
  app->add_option("-r", args->repair, "Repair: leaks (free leaked clusters) or all");
  app->add_option("--output", args->output, "human (default) or json");
  app->add_flag("-q", args->quiet, "Print nothing; the exit status says it all");
  app->add_option("file", args->file, "Image")->required();
  return {app, [args] { return Check(*args); }};
}

}  // namespace vireo::img
