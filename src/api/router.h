// Router: the control API's route table, independent of the HTTP library. A request is
// matched by exact path, then by method: an unknown path is 404, a known path with another
// method is 405 with the methods it has. Handlers answer with a status and a JSON body.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace vireo::api {

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string path;    // without the query string
  std::string body;
};

struct HttpResponse {
  int status = 200;
  nlohmann::json body = nlohmann::json::object();
  std::string allow;  // for 405: the path's methods, comma-separated
};

// {"error": message} with `status`.
HttpResponse ErrorResponse(int status, std::string message);

class Router {
 public:
  using Handler = std::function<HttpResponse(const HttpRequest&)>;

  void Add(const std::string& method, const std::string& path, Handler handler);
  // Never throws: a handler's exception becomes a 500 with its message.
  HttpResponse Dispatch(const HttpRequest& request) const;
  // (method, path) of every route, for documentation checks.
  std::vector<std::pair<std::string, std::string>> routes() const;

 private:
  std::map<std::string, std::map<std::string, Handler>> routes_;  // path -> method -> handler
};

}  // namespace vireo::api
