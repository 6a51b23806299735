// The management commands: `vireo daemon` and the virsh-style commands that talk to it
// (list, define, undefine, start, shutdown, destroy, reboot, suspend, resume, dominfo,
// domstate, dumpxml, console, domstats, autostart, event, vcpuinfo, vcpupin, snapshot-*,
// net-*). Names, messages and
// exit statuses (0 success, 1 failure) follow virsh; --json prints the API's JSON for scripts.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace vireo::cli {

class MgmtCommands {
 public:
  // Adds the commands to `app`.
  explicit MgmtCommands(CLI::App& app);
  bool parsed() const;
  int Run();

 private:
  struct Command {
    CLI::App* app;
    std::function<int()> run;
  };
  struct Common {
    std::string connect;
    bool json = false;
  };
  CLI::App* Add(CLI::App& app, const std::string& name, const std::string& help,
                std::function<int()> run);

  Common common_;
  std::vector<Command> commands_;
  // Options shared by several commands.
  std::string name_, file_, snapshot_;
  bool all_ = false, strict_ = false, disable_ = false, history_ = false, loop_ = false,
       config_ = false;
  uint32_t vcpu_ = 0;
  int timeout_s_ = 0;
  // setmem, migrate, start --incoming, domstate --reason.
  std::string size_, uri_, incoming_;
  bool live_ = false, current_ = false, reason_ = false, toml_ = false;
  uint64_t max_downtime_ms_ = 0, bandwidth_mibs_ = 0;
  std::string state_dir_, socket_, listen_, tls_cert_, tls_key_, token_file_;
  bool no_cgroups_ = false, verbose_ = false;
};

}  // namespace vireo::cli
