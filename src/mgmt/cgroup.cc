#include "mgmt/cgroup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace vireo::mgmt {
namespace {

constexpr const char* kRoot = "/sys/fs/cgroup";

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Status WriteFile(const std::string& path, const std::string& value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  if (!out) return Fail("cannot write '{}' to {}: {}", value, path, std::strerror(errno));
  return {};
}

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) {
    return Fail("cannot create cgroup {}: {}", path, std::strerror(errno));
  }
  return {};
}

// The daemon's own group in each hierarchy, from /proc/self/cgroup ("ID:CONTROLLERS:PATH").
std::string OwnGroup(const std::string& controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':'), b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::stringstream list(controllers);
    std::string item;
    while (std::getline(list, item, ',')) {
      if (item == controller) return line.substr(b + 1);
    }
    if (controller.empty() && controllers.empty()) return line.substr(b + 1);
  }
  return "";
}

std::string Join(const std::string& base, const std::string& group) {
  return group == "/" ? base : base + group;
}

}  // namespace

Cgroups Cgroups::Disabled(std::string reason) {
  Cgroups c;
  c.reason_ = std::move(reason);
  return c;
}

Cgroups Cgroups::Detect() {
  if (Exists(std::string(kRoot) + "/cgroup.controllers")) {
    std::string own = Join(kRoot, OwnGroup(""));
    // v2's "no internal processes" rule: a group that delegates controllers holds no
    // processes, so the daemon moves itself into a leaf of its own group first.
    std::string leaf = own + "/daemon";
    if (auto s = MakeDir(leaf); !s) return Disabled(s.error().message);
    if (auto s = WriteFile(leaf + "/cgroup.procs", std::to_string(::getpid())); !s) {
      return Disabled(s.error().message);
    }
    if (auto s = WriteFile(own + "/cgroup.subtree_control", "+cpu +memory"); !s) {
      return Disabled(s.error().message + " (is the cpu and memory controller delegated?)");
    }
    Cgroups c;
    c.version_ = 2;
    c.v2_base_ = own;
    return c;
  }
  std::string cpu = Join(std::string(kRoot) + "/cpu", OwnGroup("cpu"));
  std::string memory = Join(std::string(kRoot) + "/memory", OwnGroup("memory"));
  if (!Exists(cpu + "/cpu.cfs_quota_us") || !Exists(memory + "/memory.limit_in_bytes")) {
    return Disabled("no cgroup v2 hierarchy and no cgroup v1 cpu and memory controllers");
  }
  Cgroups c;
  c.version_ = 1;
  c.cpu_base_ = cpu + "/vireo";
  c.memory_base_ = memory + "/vireo";
  if (auto s = MakeDir(c.cpu_base_); !s) return Disabled(s.error().message);
  if (auto s = MakeDir(c.memory_base_); !s) return Disabled(s.error().message);
  return c;
}

std::vector<std::string> Cgroups::Paths(const std::string& name) const {
  if (version_ == 2) return {v2_base_ + "/vm-" + name};
  if (version_ == 1) return {cpu_base_ + "/" + name, memory_base_ + "/" + name};
  return {};
}

Result<std::vector<std::string>> Cgroups::Create(const std::string& name,
                                                 const CgroupLimits& limits) {
  std::vector<std::string> paths = Paths(name);
  for (const std::string& path : paths) VIREO_TRY_STATUS(MakeDir(path));
  if (version_ == 2) {
    const std::string& dir = paths[0];
    std::string cpu_max = limits.cpu_quota_us
                              ? fmt::format("{} {}", limits.cpu_quota_us, limits.cpu_period_us)
                              : fmt::format("max {}", limits.cpu_period_us);
    VIREO_TRY_STATUS(WriteFile(dir + "/cpu.max", cpu_max));
    VIREO_TRY_STATUS(WriteFile(dir + "/memory.max", limits.memory_bytes
                                                        ? std::to_string(limits.memory_bytes)
                                                        : std::string("max")));
    return std::vector<std::string>{dir + "/cgroup.procs"};
  }
  if (version_ == 1) {
    VIREO_TRY_STATUS(
        WriteFile(paths[0] + "/cpu.cfs_period_us", std::to_string(limits.cpu_period_us)));
    VIREO_TRY_STATUS(WriteFile(paths[0] + "/cpu.cfs_quota_us",
                               limits.cpu_quota_us ? std::to_string(limits.cpu_quota_us) : "-1"));
    VIREO_TRY_STATUS(WriteFile(paths[1] + "/memory.limit_in_bytes",
                               limits.memory_bytes ? std::to_string(limits.memory_bytes) : "-1"));
    return std::vector<std::string>{paths[0] + "/cgroup.procs", paths[1] + "/cgroup.procs"};
  }
  return Fail("cgroups are disabled: {}", reason_);
}

CgroupUsage Cgroups::Usage(const std::string& name) const {
  CgroupUsage usage;
  std::vector<std::string> paths = Paths(name);
  if (version_ == 2) {
    std::ifstream in(paths[0] + "/cpu.stat");
    std::string key;
    uint64_t value = 0;
    while (in >> key >> value) {
      if (key == "usage_usec") usage.cpu_ns = value * 1000;
    }
    usage.memory_bytes =
        std::strtoull(ReadFirstLine(paths[0] + "/memory.current").c_str(), nullptr, 10);
  } else if (version_ == 1) {
    // cpuacct may be co-mounted with cpu; cpu.stat has no usage in v1.
    usage.cpu_ns = std::strtoull(ReadFirstLine(paths[0] + "/cpuacct.usage").c_str(), nullptr, 10);
    usage.memory_bytes =
        std::strtoull(ReadFirstLine(paths[1] + "/memory.usage_in_bytes").c_str(), nullptr, 10);
  }
  return usage;
}

void Cgroups::Remove(const std::string& name) const {
  for (const std::string& path : Paths(name)) ::rmdir(path.c_str());
}

}  // namespace vireo::mgmt
