// One VM process as the daemon runs it, in the manner of a container monitor: the daemon
// forks a small monitor ("shim") in its own session, the shim forks and execs
// `vireo run`, waits for it and writes its exit status to a file. The shim outlives a
// daemon restart, so a restarted daemon still learns how a VM ended while it was away.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"

namespace vireo::mgmt {

struct LaunchSpec {
  std::vector<std::string> argv;          // argv[0] is the vireo binary's path
  std::string log_path;                   // the VM's stderr (vireo's own messages)
  std::string console_path;               // COM1 output (the VM's stdout)
  std::string console_input;              // a FIFO: COM1 input (the VM's stdin)
  std::string exit_path;                  // written by the shim: "exit N" or "signal N"
  std::vector<std::string> cgroup_procs;  // cgroup.procs files the VM joins before exec
};

struct ProcessRecord {
  pid_t shim_pid = 0;
  uint64_t shim_start = 0;  // /proc/PID/stat starttime, against PID reuse
  pid_t vm_pid = 0;
  uint64_t vm_start = 0;
};

Result<ProcessRecord> SpawnVm(const LaunchSpec& spec);

// Field 22 of /proc/PID/stat (clock ticks since boot); 0 when there is no such process.
uint64_t ProcessStartTime(pid_t pid);
// The process is alive and is the one recorded (same start time).
bool IsSameProcess(pid_t pid, uint64_t start_time);

// How a VM process ended, from the shim's exit file.
struct ExitStatus {
  bool signaled = false;
  int code = 0;                  // exit status, or signal number
  std::string Describe() const;  // "exit status 85", "killed by signal 9"
};
std::optional<ExitStatus> ReadExitFile(const std::string& path);

// Blocks until `vm_pid` (recorded with `vm_start`) has ended or `stop_fd` becomes
// readable; returns false for the latter. Reaps `shim_pid` when it is our child.
bool WaitForExit(const ProcessRecord& record, int stop_fd);

}  // namespace vireo::mgmt
