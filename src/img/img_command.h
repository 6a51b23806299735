// `vireo img`: disk image tools that follow qemu-img's syntax, output and exit codes.
// One file per subcommand (create.cc, info.cc, ...); each registers its CLI11 options and the
// function that runs it. main.cc only creates the ImgCommand and runs it once parsed.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vireo::img {

// Exit statuses as qemu-img uses them; check has its own (report.h).
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;

struct Subcommand {
  CLI::App* app = nullptr;
  std::function<int()> run;
};

Subcommand AddCreate(CLI::App& img);
Subcommand AddInfo(CLI::App& img);
Subcommand AddConvert(CLI::App& img);
Subcommand AddCheck(CLI::App& img);
Subcommand AddSnapshot(CLI::App& img);
Subcommand AddResize(CLI::App& img);
Subcommand AddCommit(CLI::App& img);
Subcommand AddMap(CLI::App& img);
Subcommand AddBench(CLI::App& img);

// Prints "vireo img SUB: MESSAGE" on stderr, one line; returns kExitError.
int ReportError(std::string_view subcommand, const Error& error);

class ImgCommand {
 public:
  // Adds `img` and its subcommands to app.
  explicit ImgCommand(CLI::App& app);
  bool parsed() const { return img_->parsed(); }
  // Runs the subcommand the command line chose; returns the exit status.
  int Run();

 private:
  CLI::App* img_;
  std::vector<Subcommand> subcommands_;
};

}  // namespace vireo::img
