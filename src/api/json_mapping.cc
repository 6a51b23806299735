#include "api/json_mapping.h"

#include <string>

#include "accel/vcpu_exit.h"

namespace vireo::api {

using nlohmann::json;

json ToJson(const VmInfo& info) {
  return {{"state", std::string(VmStateName(info.state))},
          {"boots", info.boots},
          {"config",
           {{"vcpus", info.vcpus},
            {"memory_bytes", info.memory_bytes},
            {"kernel", info.kernel},
            {"cmdline", info.cmdline},
            {"transport", info.transport},
            {"accelerator", info.accelerator},
            {"irqchip", info.irqchip},
            {"devices", info.devices}}}};
}

json ToJson(const VmCounters& counters) {
  json vcpus = json::array();
  for (size_t id = 0; id < counters.vcpus.size(); ++id) {
    const VcpuCounters& c = counters.vcpus[id];
    // Every reason, zero or not, so clients see a fixed set of keys.
    json exits = json::object();
    for (size_t r = 0; r < c.exits.size(); ++r) {
      exits[std::string(accel::ExitReasonName(static_cast<accel::ExitReason>(r)))] = c.exits[r];
    }
    vcpus.push_back({{"id", id},
                     {"exits", exits},
                     {"unclaimed",
                      {{"pio_reads", c.pio_unclaimed_reads},
                       {"pio_writes", c.pio_unclaimed_writes},
                       {"mmio_reads", c.mmio_unclaimed_reads},
                       {"mmio_writes", c.mmio_unclaimed_writes}}}});
  }
  json devices = json::array();
  for (const DeviceCounters& d : counters.devices) {
    json values = json::object();
    for (const auto& [name, value] : d.values) values[name] = value;
    devices.push_back({{"name", d.device}, {"counters", values}});
  }
  return {{"vcpus", vcpus}, {"devices", devices}};
}

json StateJson(VmState state) { return {{"state", std::string(VmStateName(state))}}; }

json ToJson(const SnapshotInfo& info) {
  return {{"path", info.path},
          {"type", info.type},
          {"memory_bytes_written", info.memory_bytes_written},
          {"state_bytes", info.state_bytes},
          {"microseconds", info.microseconds}};
}

json ToJson(const MigrationInfo& info) {
  json out = {{"state", info.state},
              {"uri", info.uri},
              {"max_downtime_ms", info.max_downtime_ms},
              {"bandwidth_limit_mbps", info.bandwidth_limit_mbps},
              {"rounds", info.rounds},
              {"pages_sent", info.pages_sent},
              {"bytes_sent", info.bytes_sent},
              {"remaining_pages", info.remaining_pages},
              {"dirty_pages_per_second", info.dirty_pages_per_second},
              {"measured_mbps", info.measured_mbps},
              {"expected_downtime_ms", info.expected_downtime_ms},
              {"downtime_ms", info.downtime_ms},
              {"total_ms", info.total_ms}};
  if (info.block) {
    out["block"] = true;
    out["disk_bytes_total"] = info.disk_bytes_total;
    out["disk_bytes_sent"] = info.disk_bytes_sent;
    out["disk_bytes_remaining"] = info.disk_bytes_remaining;
  }
  if (info.postcopy_after_rounds != 0) {
    out["postcopy"] = true;
    out["postcopy_after_rounds"] = info.postcopy_after_rounds;
    out["postcopy_switched"] = info.postcopy_switched;
    out["postcopy_pages"] = info.postcopy_pages;
    out["postcopy_pages_sent"] = info.postcopy_pages_sent;
    out["postcopy_requests"] = info.postcopy_requests;
    out["postcopy_ms"] = info.postcopy_ms;
  }
  if (!info.phase.empty()) out["phase"] = info.phase;
  if (!info.error.empty()) out["error"] = info.error;
  return out;
}

json ToJson(const BalloonInfo& info) {
  return {{"target_bytes", info.target_bytes},
          {"actual_bytes", info.actual_bytes},
          {"num_pages", info.target_bytes / 4096},
          {"actual_pages", info.actual_bytes / 4096},
          {"memory_bytes", info.memory_bytes}};
}

}  // namespace vireo::api
