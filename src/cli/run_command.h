// `vireo run`: parse options into a VmConfig, boot the VM, map how it ended to an exit status.
#pragma once

#include <CLI/CLI.hpp>

#include <chrono>

#include "vmm/vm_config.h"

namespace vireo::cli {

// Exit statuses shared by every command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

struct RunOptions {
  VmConfig config;
  std::string memory_text = "256M";
  std::string serial_text = "stdio";
  std::string affinity_text;
  std::string backing_text = "anon";
  std::string boot_text = "auto";
  std::string transport_text = "pci";
  std::vector<std::string> disk_texts;
  std::vector<std::string> net_texts;
  std::string vsock_text;
  std::string api_socket;          // --api-socket: serve the control API (docs/api.yaml) here
  std::string restore_dir;         // --restore: resume the VM a snapshot directory holds
  bool restore_paused = false;     // --paused: ... and leave it paused (for the API to resume)
  std::string incoming_uri;        // --incoming: receive a live migration (tcp:HOST:PORT)
  std::string accel_text = "kvm";  // --accel: kvm or emu (the software CPU)
  std::string hpet_text = "auto";  // --hpet: on, off, or auto (on with emu, off with kvm)
  std::string decompress_text = "auto";  // --kernel-decompress: host, guest or auto
  std::string irqchip_text;              // --irqchip: kernel or split (KVM only; empty: kernel)
  bool cmdline_given = false;
  bool verbose = false;
};

// Registers the `run` subcommand's options on `app`.
CLI::App* AddRunCommand(CLI::App& app, RunOptions& options);

// Turns the option strings into `options.config`; errors are usage errors (exit 2).
Status ValidateRunOptions(RunOptions& options);

// Boots and runs the VM; returns the process exit status.
int Run(RunOptions& options, std::chrono::steady_clock::time_point process_start);

}  // namespace vireo::cli
