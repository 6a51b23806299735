// Client: the CLI's side of the daemon API. A connection URI is a socket path,
// unix:///PATH, or https://HOST:PORT (remote; the token comes from $VIREO_TOKEN and the
// server's certificate is checked against $VIREO_CA_CERT when set).
#pragma once

#include <map>
#include <memory>
#include <string>

#include "base/result.h"

namespace httplib {
class Client;
}

namespace vireo::mgmt {

struct Reply {
  int status = 0;
  std::string body;
  std::string content_type;
  std::map<std::string, std::string> headers;
};

// The socket `vireo daemon` uses when given none: /run/vireo/vireod.sock for root,
// $XDG_RUNTIME_DIR/vireo/vireod.sock (or /tmp/vireo-UID/vireod.sock) otherwise.
std::string DefaultSocketPath();
// The connection a CLI command uses: --connect, else $VIREO_CONNECT, else the default.
std::string ResolveConnectUri(const std::string& connect);

class Client {
 public:
  static Result<std::unique_ptr<Client>> Connect(const std::string& uri);
  ~Client();
  // Fails only when the daemon cannot be reached; HTTP errors are in Reply::status.
  Result<Reply> Call(const std::string& method, const std::string& path,
                     const std::string& body = "",
                     const std::string& content_type = "application/json", int read_timeout_s = 60);

 private:
  Client() = default;
  std::unique_ptr<httplib::Client> http_;
  std::string uri_;
  std::string socket_path_;  // for a Unix-socket connection
};

}  // namespace vireo::mgmt
