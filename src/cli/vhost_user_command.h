// `vireo vhost-user blk|net|rng`: one of Vireo's virtio devices served as a vhost-user back-end
// on a Unix socket, for QEMU or any other vhost-user front-end. The device objects are the ones
// `vireo run` builds; src/vhost_user is the transport. docs/vhost-user.md has the QEMU command
// lines and the protocol support.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace vireo::cli {

struct VhostUserOptions {
  std::string socket;
  std::string disk_text;  // blk: path=FILE[,format=..][,readonly=on][,discard=on]...
  std::string tap;        // net
  std::string mac;        // net, optional
  bool once = false;      // exit after the first front-end disconnects
  int verbose = 0;        // -v: connections and counters; -vv: every message
};

// Registers `vhost-user` with its blk, net and rng subcommands on `app`.
CLI::App* AddVhostUserCommand(CLI::App& app, VhostUserOptions& options);

// Runs the parsed subcommand of `command` (the App AddVhostUserCommand returned); returns the
// process exit status: 0 after --once's front-end left, 1 for an error (one line naming it),
// 2 for a usage error, 128 + N when stopped by signal N (SIGINT, SIGTERM, SIGHUP).
int RunVhostUser(CLI::App& command, VhostUserOptions& options);

}  // namespace vireo::cli
