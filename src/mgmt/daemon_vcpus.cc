// Daemon: vCPU threads of a running VM (vcpuinfo, vcpupin), found by the names the VMM
// gives them (vmm/machine.cc: "vcpuN") under /proc/PID/task.
#include <sched.h>
#include <unistd.h>

#include <charconv>
#include <thread>

#include "mgmt/daemon.h"
#include "mgmt/daemon_internal.h"

namespace vireo::mgmt {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace daemon_internal;

namespace {

struct VcpuThread {
  uint32_t index = 0;
  pid_t tid = 0;
};

std::vector<VcpuThread> VcpuThreads(pid_t pid) {
  std::vector<VcpuThread> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
    auto comm = ReadText(entry.path() / "comm");
    if (!comm || comm->rfind("vcpu", 0) != 0) continue;
    std::string digits = comm->substr(4);
    while (!digits.empty() && digits.back() == '\n') digits.pop_back();
    uint32_t index = 0;
    auto [end, err] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (digits.empty() || err != std::errc() || end != digits.data() + digits.size()) continue;
    out.push_back({index, static_cast<pid_t>(std::stoi(entry.path().filename().string()))});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.index < b.index; });
  return out;
}

// "0-2,4" -> a cpu_set_t; CPUs must exist on this host.
Result<cpu_set_t> ParseCpuList(const std::string& text) {
  cpu_set_t set;
  CPU_ZERO(&set);
  const long host_cpus = static_cast<long>(std::thread::hardware_concurrency());
  std::string_view rest = text;
  if (rest.empty()) return Fail("cpulist: empty");
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? "" : rest.substr(comma + 1);
    size_t dash = item.find('-');
    auto number = [&](std::string_view t) -> Result<long> {
      long v = -1;
      auto [end, err] = std::from_chars(t.data(), t.data() + t.size(), v);
      if (t.empty() || err != std::errc() || end != t.data() + t.size() || v < 0) {
        return Fail("cpulist '{}': '{}' is not a CPU number", text, t);
      }
      if (v >= host_cpus) {
        return Fail("cpulist '{}': host CPU {} does not exist (CPUs 0-{})", text, v, host_cpus - 1);
      }
      return v;
    };
    long first = VIREO_TRY(number(item.substr(0, dash)));
    long last = dash == std::string_view::npos ? first : VIREO_TRY(number(item.substr(dash + 1)));
    if (last < first) return Fail("cpulist '{}': range {} is backwards", text, item);
    for (long cpu = first; cpu <= last; ++cpu) CPU_SET(static_cast<int>(cpu), &set);
  }
  return set;
}

}  // namespace

HttpResponse Daemon::VcpuInfo(const std::string& name) {
  std::lock_guard lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  if (d->state != "running" && d->state != "paused") {
    return api::ErrorResponse(409, fmt::format("{}: domain is not running", kNotValid));
  }
  json list = json::array();
  const uint64_t tick_ns = 1000000000ull / static_cast<uint64_t>(::sysconf(_SC_CLK_TCK));
  for (const VcpuThread& t : VcpuThreads(d->process.vm_pid)) {
    json entry = {{"vcpu", t.index}, {"tid", t.tid}};
    if (auto stat = ReadText(fmt::format("/proc/{}/task/{}/stat", d->process.vm_pid, t.tid))) {
      std::istringstream fields(stat->substr(stat->rfind(')') + 2));
      std::vector<std::string> f{std::istream_iterator<std::string>(fields), {}};
      // Fields from 3 (state): utime 14, stime 15, processor 39.
      if (f.size() > 36) {
        entry["state"] = f[0] == "R" ? "running" : "idle";
        entry["cpu"] = std::stoi(f[36]);
        entry["cpu_time_ns"] = (std::stoull(f[11]) + std::stoull(f[12])) * tick_ns;
      }
    }
    cpu_set_t set;
    json affinity = json::array();
    if (::sched_getaffinity(t.tid, sizeof(set), &set) == 0) {
      for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
        if (CPU_ISSET(cpu, &set)) affinity.push_back(cpu);
      }
    }
    entry["affinity"] = affinity;
    list.push_back(entry);
  }
  return Ok({{"vcpus", list}, {"host_cpus", std::thread::hardware_concurrency()}});
}

HttpResponse Daemon::VcpuPin(const std::string& name, uint32_t vcpu, const std::string& cpuset,
                             bool config) {
  auto set = ParseCpuList(cpuset);
  if (!set) return api::ErrorResponse(400, set.error().message);
  std::lock_guard lock(mutex_);
  Domain* d = Find(name);
  if (!d) return NoDomain(name);
  if (vcpu >= d->def.vcpus) {
    return api::ErrorResponse(400, fmt::format("vcpu {}: the domain has {} vCPUs (0-{})", vcpu,
                                               d->def.vcpus, d->def.vcpus - 1));
  }
  const bool live = d->state == "running" || d->state == "paused";
  if (!live && !config) {
    return api::ErrorResponse(409, fmt::format("{}: domain is not running (--config changes its "
                                               "definition)",
                                               kNotValid));
  }
  if (live) {
    bool found = false;
    for (const VcpuThread& t : VcpuThreads(d->process.vm_pid)) {
      if (t.index != vcpu) continue;
      found = true;
      if (::sched_setaffinity(t.tid, sizeof(*set), &*set) != 0) {
        return api::ErrorResponse(
            500, fmt::format("vcpu {}: sched_setaffinity: {}", vcpu, std::strerror(errno)));
      }
    }
    if (!found)
      return api::ErrorResponse(500, fmt::format("vcpu {}: no such thread in the VM", vcpu));
  }
  if (config) {
    if (CPU_COUNT(&*set) != 1) {
      return api::ErrorResponse(
          400, fmt::format("cpulist '{}': a definition pins a vCPU to one host CPU", cpuset));
    }
    for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
      if (CPU_ISSET(cpu, &*set)) d->def.vcpupin[vcpu] = std::to_string(cpu);
    }
    if (auto s = SaveDefinition(*d); !s) return api::ErrorResponse(500, s.error().message);
  }
  return Ok({{"vcpu", vcpu}, {"cpuset", cpuset}, {"live", live}, {"config", config}});
}

}  // namespace vireo::mgmt
