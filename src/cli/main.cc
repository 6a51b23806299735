// vireo: the command-line entry point. Subcommands live one per file beside this one.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <chrono>

#include "cli/run_command.h"

int main(int argc, char** argv) {
  const auto process_start = std::chrono::steady_clock::now();
  CLI::App app{"Vireo: a KVM virtual machine monitor", "vireo"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "vireo 0.1.0");
  vireo::cli::RunOptions run_options;
  CLI::App* run = vireo::cli::AddRunCommand(app, run_options);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "vireo: error: {} (see 'vireo --help')\n", e.what());
    return vireo::cli::kExitUsage;
  }

  if (run->parsed()) {
    if (auto status = vireo::cli::ValidateRunOptions(run_options); !status) {
      fmt::print(stderr, "vireo: error: {} (see 'vireo run --help')\n", status.error().message);
      return vireo::cli::kExitUsage;
    }
    return vireo::cli::Run(run_options, process_start);
  }
  return vireo::cli::kExitUsage;
}
