// The control API's JSON shapes (docs/api.yaml's schemas), from the VMM's plain structs.
#pragma once

#include <nlohmann/json.hpp>

#include "vmm/vm_controller.h"

namespace vireo::api {

// {"state", "boots", "config": {"vcpus", "memory_bytes", "kernel", "cmdline", "transport",
// "devices"}}
nlohmann::json ToJson(const VmInfo& info);
// {"vcpus": [{"id", "exits": {reason: n}, "unclaimed": {...}}], "devices": [{"name", "counters"}]}
nlohmann::json ToJson(const VmCounters& counters);
// {"path", "type", "memory_bytes_written", "state_bytes", "microseconds"}
nlohmann::json ToJson(const SnapshotInfo& info);
// {"state", "uri", "rounds", "pages_sent", ..., "downtime_ms", "total_ms"[, "phase"][, "error"]}
nlohmann::json ToJson(const MigrationInfo& info);
// {"target_bytes", "actual_bytes", "num_pages", "actual_pages", "memory_bytes"}
nlohmann::json ToJson(const BalloonInfo& info);
// {"state"}: the answer to an action.
nlohmann::json StateJson(VmState state);

}  // namespace vireo::api
