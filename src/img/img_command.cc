#include "img/img_command.h"

#include <fmt/format.h>

namespace vireo::img {

int ReportError(std::string_view subcommand, const Error& error) {
  fmt::print(stderr, "vireo img {}: {}\n", subcommand, error.message);
  return kExitError;
}

ImgCommand::ImgCommand(CLI::App& app) {
  img_ = app.add_subcommand("img", "Create, inspect, convert and check disk images (raw, qcow2)");
  img_->require_subcommand(1);
  for (auto add : {AddCreate, AddInfo, AddConvert, AddCheck, AddSnapshot, AddResize, AddCommit,
                   AddMap, AddBench}) {
    subcommands_.push_back(add(*img_));
  }
}

int ImgCommand::Run() {
  for (const Subcommand& sub : subcommands_) {
    if (sub.app->parsed()) return sub.run();
  }
  return kExitError;  // require_subcommand(1) makes this unreachable.
}

}  // namespace vireo::img
