// Host side of virtio-vsock, Firecracker's scheme: the VMM listens on a Unix domain socket
// at `uds_path`; a host application connects and writes "CONNECT <port>\n" to reach guest
// port <port>, and is answered "OK <host_port>\n" once the guest accepts. A guest
// connecting to host port P is forwarded to the socket at "<uds_path>_P", where a host
// application listens. This file holds the socket helpers and the parsers of user input.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vireo::virtio::vsock {

struct VsockOptions {
  uint64_t guest_cid = 3;
  std::string uds_path;
  size_t max_connections = 1024;  // live connections, host- and guest-initiated
};

// Parses the --vsock value "cid=N,uds=PATH" (keys in any order, both required) and checks
// the CID range and that "<PATH>_<port>" fits a sockaddr_un.
Result<VsockOptions> ParseVsockSpec(std::string_view spec);
Status CheckVsockOptions(const VsockOptions& options);

// "<uds_path>_<port>".
std::string PortSocketPath(std::string_view uds_path, uint32_t port);

// A non-blocking, close-on-exec listening socket at `path`. A stale socket file there is
// replaced; any other file there is an error.
Result<UniqueFd> ListenUnix(const std::string& path);
// A non-blocking, close-on-exec socket connected to `path`; fails at once when nobody
// listens there or its backlog is full (Unix sockets do not connect asynchronously).
Result<UniqueFd> ConnectUnix(const std::string& path);

// Parses a CONNECT line without its '\n': exactly "CONNECT <decimal u32>".
std::optional<uint32_t> ParseConnectLine(std::string_view line);

}  // namespace vireo::virtio::vsock
