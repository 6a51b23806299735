// vireo: the command-line entry point. Subcommands live one per file beside this one.
#include <fmt/format.h>
#include <CLI/CLI.hpp>

#include <chrono>

#include "cli/mgmt_commands.h"
#include "cli/run_command.h"
#include "cli/vhost_user_command.h"
#include "img/img_command.h"

namespace {

int Main(int argc, char** argv) {
  const auto process_start = std::chrono::steady_clock::now();
  CLI::App app{"Vireo: a KVM virtual machine monitor", "vireo"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "vireo 0.1.0");
  vireo::cli::RunOptions run_options;
  CLI::App* run = vireo::cli::AddRunCommand(app, run_options);
  vireo::cli::VhostUserOptions vhost_user_options;
  CLI::App* vhost_user = vireo::cli::AddVhostUserCommand(app, vhost_user_options);
  vireo::img::ImgCommand img(app);
  vireo::cli::MgmtCommands mgmt(app);

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
  if (vhost_user->parsed()) return vireo::cli::RunVhostUser(*vhost_user, vhost_user_options);
  if (img.parsed()) return img.Run();
  if (mgmt.parsed()) return mgmt.Run();
  return vireo::cli::kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
  // Exceptions are for set-up errors only, and each is caught where it has context; one
  // reaching here is a bug, reported in one line rather than by std::terminate.
  try {
    return Main(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "vireo: internal error: {}\n", e.what());
    return vireo::cli::kExitError;
  }
}
