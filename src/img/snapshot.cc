// vireo img snapshot [-f FMT] [-q] (-l | -c NAME | -a NAME | -d NAME) FILE
// Internal qcow2 snapshots, as qemu-img snapshot: -l prints qemu-img's table (nothing when
// there are none), -a and -d take an ID or a name.
#include <fmt/format.h>

#include "img/img_command.h"
#include "img/img_open.h"
#include "img/options.h"
#include "img/report.h"

namespace vireo::img {
namespace {

struct SnapshotArgs {
  std::string format;
  bool list = false;
  std::string create;
  std::string apply;
  std::string remove;
  bool quiet = false;
  std::string file;
};

Status Snapshot(const SnapshotArgs& args) {
  const int actions = args.list + !args.create.empty() + !args.apply.empty() + !args.remove.empty();
  if (actions != 1) return Fail("give exactly one of -l, -c NAME, -a NAME or -d NAME");
  OpenRequest request;
  request.path = args.file;
  request.format = VIREO_TRY(ParseFormatOption(args.format, "-f"));
  request.read_only = args.list;
  // Snapshots live in this file alone; the backing chain is not needed to make or use them.
  request.open_backing = false;
  OpenedImage opened = VIREO_TRY(OpenImg(request));
  if (opened.qcow2 == nullptr) {
    return Fail("'{}' is a {} image, which has no snapshots: convert it to qcow2 first", args.file,
                opened.image->format());
  }
  auto& image = *opened.qcow2;
  if (args.list) {
    auto snapshots = VIREO_TRY(image.ListSnapshots());
    if (!snapshots.empty()) fmt::print("Snapshot list:\n{}", SnapshotTable(snapshots));
    return {};
  }
  if (!args.create.empty()) {
    auto status = image.CreateSnapshot(args.create);
    if (!status)
      return Fail("could not create snapshot '{}': {}", args.create, status.error().message);
  } else if (!args.apply.empty()) {
    auto status = image.ApplySnapshot(args.apply);
    if (!status)
      return Fail("could not apply snapshot '{}': {}", args.apply, status.error().message);
  } else {
    auto status = image.DeleteSnapshot(args.remove);
    if (!status)
      return Fail("could not delete snapshot '{}': {}", args.remove, status.error().message);
  }
  return ToStatus(image.Flush());
}

}  // namespace

Subcommand AddSnapshot(CLI::App& img) {
  auto args = std::make_shared<SnapshotArgs>();
  CLI::App* app = img.add_subcommand("snapshot", "List, create, apply or delete qcow2 snapshots");
  app->add_option("-f", args->format, "Format (default: probed)");
  app->add_flag("-l", args->list, "List the snapshots");
  app->add_option("-c", args->create, "Create a snapshot named NAME");
  app->add_option("-a", args->apply, "Revert the disk to snapshot NAME (or ID)");
  app->add_option("-d", args->remove, "Delete snapshot NAME (or ID)");
  app->add_flag("-q", args->quiet, "Quiet");
  app->add_option("file", args->file, "Image")->required();
  return {app, [args] {
            auto status = Snapshot(*args);
            return status ? kExitOk : ReportError("snapshot", status.error());
          }};
}

}  // namespace vireo::img
