// Per-VM cgroups carrying a definition's CPU and memory limits: cgroup v2 where the host
// has the unified hierarchy at /sys/fs/cgroup, v1 (cpu + memory controllers) otherwise.
// VMs' groups sit below the daemon's own group ("vireo/NAME" in v1; in v2 the daemon moves
// itself into a "daemon" leaf so its group can delegate controllers). When none of this is
// possible the daemon runs VMs without limits and says why.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "base/result.h"

namespace vireo::mgmt {

struct CgroupLimits {
  uint64_t cpu_quota_us = 0;  // per period; 0: no CPU limit
  uint64_t cpu_period_us = 100000;
  uint64_t memory_bytes = 0;  // 0: no memory limit
};

struct CgroupUsage {
  uint64_t cpu_ns = 0;
  uint64_t memory_bytes = 0;
};

class Cgroups {
 public:
  // Finds the hierarchy and the daemon's place in it. Never fails: an unusable host gives
  // a disabled Cgroups whose reason() says why.
  static Cgroups Detect();
  static Cgroups Disabled(std::string reason);

  bool enabled() const { return version_ != 0; }
  int version() const { return version_; }
  const std::string& reason() const { return reason_; }

  // Creates NAME's group(s) with `limits`; returns the cgroup.procs files the VM joins.
  Result<std::vector<std::string>> Create(const std::string& name, const CgroupLimits& limits);
  // The group directories of NAME (for dominfo and removal).
  std::vector<std::string> Paths(const std::string& name) const;
  CgroupUsage Usage(const std::string& name) const;
  // Removes NAME's (empty) groups; failures are ignored (a VM process may linger).
  void Remove(const std::string& name) const;

 private:
  int version_ = 0;
  std::string reason_;
  std::string v2_base_;   // v2: the directory holding vm-NAME groups
  std::string cpu_base_;  // v1: .../cpu/<daemon's group>/vireo
  std::string memory_base_;
};

}  // namespace vireo::mgmt
