// ApiServer: serves a Router over HTTP/1.1 on a Unix socket, with cpp-httplib (Debian's
// libcpp-httplib-dev) doing all the HTTP. Requests run on the library's worker threads;
// whatever they touch must be thread-safe (MachineController serialises control calls).
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "api/router.h"
#include "base/result.h"

namespace httplib {
class Server;
}

namespace vireo::api {

class ApiServer {
 public:
  static constexpr size_t kMaxBodyBytes = 64 * 1024;

  // Binds `socket_path` (mode 0600; a stale socket there is replaced, any other file is
  // an error) and starts serving on a thread of its own.
  static Result<std::unique_ptr<ApiServer>> Start(const std::string& socket_path, Router router);
  // Stops serving, waits for requests in progress and removes the socket.
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

 private:
  ApiServer(std::string path, Router router);

  std::string path_;
  Router router_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  bool bound_ = false;  // the socket file is ours to remove
};

}  // namespace vireo::api
