#include "api/http_server.h"

#include <httplib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace vireo::api {
namespace {

void Answer(const HttpResponse& response, httplib::Response& out) {
  out.status = response.status;
  if (!response.allow.empty()) out.set_header("Allow", response.allow);
  out.set_content(response.body.dump(), "application/json");
}

std::string StatusText(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 413:
      return "request body too large";
    case 414:
      return "request URI too long";
    default:
      return "HTTP error " + std::to_string(status);
  }
}

}  // namespace

ApiServer::ApiServer(std::string path, Router router)
    : path_(std::move(path)),
      router_(std::move(router)),
      server_(std::make_unique<httplib::Server>()) {}

Result<std::unique_ptr<ApiServer>> ApiServer::Start(const std::string& socket_path, Router router) {
  if (socket_path.empty() || socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Fail("--api-socket '{}': a Unix socket path must be 1-{} bytes", socket_path,
                sizeof(sockaddr_un{}.sun_path) - 1);
  }
  struct stat st {};
  if (::lstat(socket_path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) {
      return Fail("--api-socket '{}': exists and is not a socket; remove it or pick another path",
                  socket_path);
    }
    ::unlink(socket_path.c_str());  // left behind by an earlier run
  }

  std::unique_ptr<ApiServer> self(new ApiServer(socket_path, std::move(router)));
  httplib::Server& server = *self->server_;
  const Router& routes = self->router_;
  auto dispatch = [&routes](const httplib::Request& request, httplib::Response& response) {
    Answer(routes.Dispatch({request.method, request.path, request.body}), response);
  };
  // Every method and path goes to the Router, which knows 404 from 405.
  server.Get(".*", dispatch);
  server.Put(".*", dispatch);
  server.Post(".*", dispatch);
  server.Delete(".*", dispatch);
  server.Patch(".*", dispatch);
  server.Options(".*", dispatch);
  // Errors the library answers by itself (malformed requests, a body over the limit) get
  // the API's JSON shape too; ours already have a body.
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [](const httplib::Request&, httplib::Response& response) {
        if (!response.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        Answer(ErrorResponse(response.status, StatusText(response.status)), response);
        return httplib::Server::HandlerResponse::Handled;
      }));
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
        Answer(ErrorResponse(500, "internal error"), response);
      });
  server.set_payload_max_length(kMaxBodyBytes);
  // Short idle keep-alive, so stopping the server does not wait long on idle clients.
  server.set_keep_alive_timeout(1);
  server.set_address_family(AF_UNIX);
  // For AF_UNIX the library takes the host as the path and ignores the port.
  if (!server.bind_to_port(socket_path, 80)) {
    return Fail("--api-socket '{}': cannot listen: {}", socket_path, std::strerror(errno));
  }
  self->bound_ = true;
  // The socket controls the VM: only its owner may connect.
  if (::chmod(socket_path.c_str(), 0600) != 0) {
    return Fail("--api-socket '{}': chmod: {}", socket_path, std::strerror(errno));
  }
  self->thread_ = std::thread([&server] { server.listen_after_bind(); });
  // stop() does nothing to a server that is not running yet, and it would then accept
  // forever: return only once it is running, so the destructor can always end it.
  while (!server.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return self;
}

ApiServer::~ApiServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
  if (bound_) ::unlink(path_.c_str());
}

}  // namespace vireo::api
