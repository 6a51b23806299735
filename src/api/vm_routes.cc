#include "api/vm_routes.h"

#include <string>

#include "api/json_mapping.h"

namespace vireo::api {
namespace {

HttpResponse FromError(const ControlError& error) {
  return ErrorResponse(error.kind == ControlError::Kind::kConflict ? 409 : 500, error.message);
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
}

}  // namespace vireo::api
