#include "api/vm_routes.h"

#include <optional>
#include <string>

#include "api/json_mapping.h"

namespace vireo::api {
namespace {

HttpResponse FromError(const ControlError& error) {
  switch (error.kind) {
    case ControlError::Kind::kConflict:
      return ErrorResponse(409, error.message);
    case ControlError::Kind::kInvalid:
      return ErrorResponse(400, error.message);
    case ControlError::Kind::kFailed:
      break;
  }
  return ErrorResponse(500, error.message);
}

// Actions take no parameters yet; a body, if any, must be a JSON object, so that adding
// parameters later cannot silently change what an old client's request means.
bool BodyIsAcceptable(const std::string& body) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) return true;
  const nlohmann::json parsed = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  return parsed.is_object() && parsed.empty();
}

}  // namespace

void AddVmRoutes(Router& router, VmController& controller) {
  const std::string vm = std::string(kApiPrefix) + "/vm";
  router.Add("GET", vm, [&controller](const HttpRequest&) {
    auto info = controller.Info();
    if (!info) return FromError(info.error());
    return HttpResponse{200, ToJson(*info), {}};
  });
  router.Add("GET", vm + "/counters", [&controller](const HttpRequest&) {
    auto counters = controller.Counters();
    if (!counters) return FromError(counters.error());
    return HttpResponse{200, ToJson(*counters), {}};
  });
  for (VmAction action : {VmAction::kPause, VmAction::kResume, VmAction::kShutdown,
                          VmAction::kReset, VmAction::kStop}) {
    router.Add("PUT", vm + "/" + std::string(VmActionName(action)),
               [&controller, action](const HttpRequest& request) {
                 if (!BodyIsAcceptable(request.body)) {
                   return ErrorResponse(400, "the body must be empty or {}");
                 }
                 auto state = controller.Apply(action);
                 if (!state) return FromError(state.error());
                 return HttpResponse{200, StateJson(*state), {}};
               });
  }
  // {"path": DIR, "type": "full" | "diff"}; the VM must be paused (else 409).
  router.Add("PUT", vm + "/snapshot", [&controller](const HttpRequest& request) {
    const nlohmann::json body =
        nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.contains("path") || !body["path"].is_string() ||
        body["path"].get<std::string>().empty()) {
      return ErrorResponse(400, R"(the body must be {"path": DIR, "type": "full"|"diff"})");
    }
    for (const auto& [key, value] : body.items()) {
      if (key != "path" && key != "type") return ErrorResponse(400, "unknown field '" + key + "'");
    }
    std::string type = "full";
    if (body.contains("type")) {
      if (!body["type"].is_string())
        return ErrorResponse(400, R"("type" must be "full" or "diff")");
      type = body["type"].get<std::string>();
    }
    if (type != "full" && type != "diff") {
      return ErrorResponse(400, R"("type" must be "full" or "diff")");
    }
    auto info = controller.Snapshot(body["path"].get<std::string>(), type == "diff");
    if (!info) return FromError(info.error());
    return HttpResponse{200, ToJson(*info), {}};
  });
  // {"uri": "tcp:HOST:PORT", "max_downtime_ms": N, "bandwidth_mbps": N, "block": B,
  // "postcopy": B, "postcopy_after_rounds": N}: starts a live migration and answers 202 at
  // once; GET follows it to its end.
  router.Add("PUT", vm + "/migrate", [&controller](const HttpRequest& request) {
    const nlohmann::json body =
        nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    constexpr const char* kShape =
        R"(the body must be {"uri": "tcp:HOST:PORT", "max_downtime_ms": N, "bandwidth_mbps": N, "block": true|false, "postcopy": true|false, "postcopy_after_rounds": N})";
    if (!body.is_object() || !body.contains("uri") || !body["uri"].is_string()) {
      return ErrorResponse(400, kShape);
    }
    MigrationRequest migration;
    migration.uri = body["uri"].get<std::string>();
    bool postcopy = false;
    std::optional<uint64_t> postcopy_after;
    for (const auto& [key, value] : body.items()) {
      if (key == "uri") continue;
      if (key == "block" || key == "postcopy") {
        if (!value.is_boolean()) return ErrorResponse(400, "'" + key + "' must be true or false");
        (key == "block" ? migration.block : postcopy) = value.get<bool>();
        continue;
      }
      if (key != "max_downtime_ms" && key != "bandwidth_mbps" && key != "postcopy_after_rounds") {
        return ErrorResponse(400, "unknown field '" + key + "'");
      }
      if (!value.is_number_unsigned()) {
        return ErrorResponse(400, "'" + key + "' must be a non-negative integer");
      }
      if (key == "postcopy_after_rounds") {
        postcopy_after = value.get<uint64_t>();
        continue;
      }
      (key == "max_downtime_ms" ? migration.max_downtime_ms : migration.bandwidth_mbps) =
          value.get<uint64_t>();
    }
    if (postcopy_after && !postcopy) {
      return ErrorResponse(400, R"("postcopy_after_rounds" needs "postcopy": true)");
    }
    if (postcopy) {
      migration.postcopy_after_rounds = postcopy_after.value_or(kDefaultPostcopyAfterRounds);
      if (migration.postcopy_after_rounds < 1 || migration.postcopy_after_rounds > 30) {
        return ErrorResponse(400, R"("postcopy_after_rounds" must be from 1 to 30)");
      }
    }
    if (migration.uri.rfind("tcp:", 0) != 0) {
      return ErrorResponse(400, R"("uri" must be tcp:HOST:PORT)");
    }
    if (migration.max_downtime_ms == 0) {
      return ErrorResponse(400, R"("max_downtime_ms" must be at least 1)");
    }
    auto info = controller.Migrate(migration);
    if (!info) return FromError(info.error());
    return HttpResponse{202, ToJson(*info), {}};
  });
  router.Add("GET", vm + "/migrate", [&controller](const HttpRequest&) {
    auto info = controller.MigrationStatus();
    if (!info) return FromError(info.error());
    return HttpResponse{200, ToJson(*info), {}};
  });
  // {"target_bytes": N}: the balloon's new target (the memory the guest should give back).
  router.Add("PUT", vm + "/balloon", [&controller](const HttpRequest& request) {
    const nlohmann::json body =
        nlohmann::json::parse(request.body, nullptr, /*allow_exceptions=*/false);
    if (!body.is_object() || !body.contains("target_bytes") ||
        !body["target_bytes"].is_number_unsigned()) {
      return ErrorResponse(400, R"(the body must be {"target_bytes": N}, N a byte count)");
    }
    for (const auto& [key, value] : body.items()) {
      if (key != "target_bytes") return ErrorResponse(400, "unknown field '" + key + "'");
    }
    auto info = controller.SetBalloonTarget(body["target_bytes"].get<uint64_t>());
    if (!info) return FromError(info.error());
    return HttpResponse{200, ToJson(*info), {}};
  });
  router.Add("GET", vm + "/balloon", [&controller](const HttpRequest&) {
    auto info = controller.BalloonStatus();
    if (!info) return FromError(info.error());
    return HttpResponse{200, ToJson(*info), {}};
  });
}

}  // namespace vireo::api
