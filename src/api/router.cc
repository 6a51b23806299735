#include "api/router.h"

#include <fmt/format.h>

#include <exception>

namespace vireo::api {

HttpResponse ErrorResponse(int status, std::string message) {
  HttpResponse response;
  response.status = status;
  response.body = {{"error", std::move(message)}};
  return response;
}

void Router::Add(const std::string& method, const std::string& path, Handler handler) {
  routes_[path][method] = std::move(handler);
}

HttpResponse Router::Dispatch(const HttpRequest& request) const {
  auto path = routes_.find(request.path);
  if (path == routes_.end()) {
    return ErrorResponse(404, fmt::format("no such resource: {}", request.path));
  }
  auto route = path->second.find(request.method);
  if (route == path->second.end()) {
    std::string allow;
    for (const auto& [method, handler] : path->second) {
      allow += allow.empty() ? method : ", " + method;
    }
    HttpResponse response = ErrorResponse(
        405, fmt::format("{} does not take {} (allowed: {})", request.path, request.method, allow));
    response.allow = allow;
    return response;
  }
  // The API boundary: nlohmann::json and the handlers' allocations may throw; the client
  // gets a 500 and the VMM goes on.
  try {
    return route->second(request);
  } catch (const std::exception& e) {
    return ErrorResponse(500, fmt::format("internal error: {}", e.what()));
  }
}

std::vector<std::pair<std::string, std::string>> Router::routes() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [path, methods] : routes_) {
    for (const auto& [method, handler] : methods) out.emplace_back(method, path);
  }
  return out;
}

}  // namespace vireo::api
