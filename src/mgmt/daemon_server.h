// The daemon's HTTP/1.1 + JSON API (docs/daemon-api.yaml) over a Unix socket, and
// optionally over TCP with TLS and a bearer token for remote management.
#pragma once

#include <string>

#include "base/result.h"
#include "mgmt/daemon.h"

namespace vireo::mgmt {

struct ServeOptions {
  std::string socket_path;  // mode 0600
  std::string listen;       // HOST:PORT for TLS, or empty
  std::string tls_cert, tls_key;
  std::string token;  // required on TCP: "Authorization: Bearer TOKEN"
};

// Serves until SIGINT or SIGTERM (blocked here and taken through sigwait), then returns.
Status Serve(Daemon& daemon, const ServeOptions& options);

}  // namespace vireo::mgmt
