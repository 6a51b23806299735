#include "mgmt/client.h"

#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

namespace vireo::mgmt {

std::string DefaultSocketPath() {
  if (::geteuid() == 0) return "/run/vireo/vireod.sock";
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime && *runtime) {
    return std::string(runtime) + "/vireo/vireod.sock";
  }
  return fmt::format("/tmp/vireo-{}/vireod.sock", ::geteuid());
}

std::string ResolveConnectUri(const std::string& connect) {
  if (!connect.empty()) return connect;
  if (const char* env = std::getenv("VIREO_CONNECT"); env && *env) return env;
  return DefaultSocketPath();
}

Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Connect(const std::string& uri) {
  std::unique_ptr<Client> self(new Client());
  self->uri_ = uri;
  if (uri.rfind("https://", 0) == 0) {
    self->http_ = std::make_unique<httplib::Client>(uri);
    if (const char* token = std::getenv("VIREO_TOKEN"); token && *token) {
      self->http_->set_bearer_token_auth(token);
    }
    if (const char* ca = std::getenv("VIREO_CA_CERT"); ca && *ca) {
      self->http_->set_ca_cert_path(ca);
      self->http_->enable_server_certificate_verification(true);
    } else {
      self->http_->enable_server_certificate_verification(false);
    }
  } else {
    std::string path = uri.rfind("unix://", 0) == 0 ? uri.substr(7) : uri;
    self->socket_path_ = path;
    if (path.empty() || path[0] != '/') {
      return Fail("--connect '{}': expected a socket path, unix:///PATH or https://HOST:PORT", uri);
    }
    self->http_ = std::make_unique<httplib::Client>(path);
    self->http_->set_address_family(AF_UNIX);
  }
  self->http_->set_connection_timeout(std::chrono::seconds(5));
  return self;
}

Result<Reply> Client::Call(const std::string& method, const std::string& path,
                           const std::string& body, const std::string& content_type,
                           int read_timeout_s) {
  http_->set_read_timeout(std::chrono::seconds(read_timeout_s));
  const std::string full = "/api/v1" + path;
  if (method != "GET" && method != "POST" && method != "PUT" && method != "DELETE") {
    return Fail("internal: unsupported HTTP method {}", method);
  }
  auto send = [&] {
    return method == "GET"    ? http_->Get(full)
           : method == "POST" ? http_->Post(full, body, content_type)
           : method == "PUT"  ? http_->Put(full, body, content_type)
                              : http_->Delete(full);
  };
  httplib::Result res = send();
  // The daemon's listen backlog is short (cpp-httplib's): when many clients connect at once a
  // Unix-socket connect fails at once instead of waiting, so a busy daemon is retried briefly.
  // A socket file that is missing means no daemon: that fails at once.
  struct stat st {};
  for (int attempt = 0;
       !res && res.error() == httplib::Error::Connection && !socket_path_.empty() &&
       ::stat(socket_path_.c_str(), &st) == 0 && attempt < 100;
       ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + attempt));
    res = send();
  }
  if (!res) {
    return Fail(
        "failed to connect to the daemon at {}: {} (is `vireo daemon` running? "
        "--connect or $VIREO_CONNECT pick another)",
        uri_, httplib::to_string(res.error()));
  }
  Reply reply;
  reply.status = res->status;
  reply.body = res->body;
  reply.content_type = res->get_header_value("Content-Type");
  for (const auto& [key, value] : res->headers) reply.headers[key] = value;
  return reply;
}

}  // namespace vireo::mgmt
