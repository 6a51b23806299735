#include "virtio/vsock/host_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include "virtio/vsock/packet.h"

namespace vireo::virtio::vsock {
namespace {

// Longest suffix PortSocketPath adds: '_' and ten digits.
constexpr size_t kPortSuffixMax = 11;

Result<sockaddr_un> UnixAddress(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Fail("vsock: socket path '{}' must be 1 to {} bytes", path, sizeof(addr.sun_path) - 1);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

std::optional<uint64_t> ParseNumber(std::string_view text) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return value;
}

}  // namespace

Status CheckVsockOptions(const VsockOptions& options) {
  if (options.guest_cid < kMinGuestCid || options.guest_cid > kMaxGuestCid) {
    return Fail("vsock: guest cid {} is reserved; use {} to {}", options.guest_cid, kMinGuestCid,
                kMaxGuestCid);
  }
  if (options.uds_path.empty() ||
      options.uds_path.size() + kPortSuffixMax >= sizeof(sockaddr_un::sun_path)) {
    return Fail("vsock: uds path '{}' must be 1 to {} bytes (room for '_<port>')", options.uds_path,
                sizeof(sockaddr_un::sun_path) - 1 - kPortSuffixMax);
  }
  if (options.max_connections == 0) return Fail("vsock: max_connections must be positive");
  return {};
}

Result<VsockOptions> ParseVsockSpec(std::string_view spec) {
  VsockOptions options;
  bool have_cid = false;
  bool have_uds = false;
  // Bounded: each round consumes at least one character of `spec`.
  while (!spec.empty()) {
    size_t comma = spec.find(',');
    std::string_view item = spec.substr(0, comma);
    spec = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) return Fail("--vsock: '{}' is not key=value", item);
    std::string_view key = item.substr(0, eq);
    std::string_view value = item.substr(eq + 1);
    if (key == "cid") {
      auto cid = ParseNumber(value);
      if (!cid) return Fail("--vsock: cid '{}' is not a number", value);
      options.guest_cid = *cid;
      have_cid = true;
    } else if (key == "uds") {
      options.uds_path = std::string(value);
      have_uds = true;
    } else {
      return Fail("--vsock: unknown key '{}' (expected cid=N,uds=PATH)", key);
    }
  }
  if (!have_cid || !have_uds) return Fail("--vsock: expected cid=N,uds=PATH");
  VIREO_TRY_STATUS(CheckVsockOptions(options));
  return options;
}

std::string PortSocketPath(std::string_view uds_path, uint32_t port) {
  return fmt::format("{}_{}", uds_path, port);
}

Result<UniqueFd> ListenUnix(const std::string& path) {
  sockaddr_un addr = VIREO_TRY(UnixAddress(path));
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) return Fail("vsock: '{}' exists and is not a socket", path);
    ::unlink(path.c_str());  // a stale socket from an earlier run
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Fail("vsock: socket: {}", std::strerror(errno));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Fail("vsock: bind '{}': {}", path, std::strerror(errno));
  }
  if (::listen(fd.get(), 128) != 0) {
    return Fail("vsock: listen '{}': {}", path, std::strerror(errno));
  }
  return fd;
}

Result<UniqueFd> ConnectUnix(const std::string& path) {
  sockaddr_un addr = VIREO_TRY(UnixAddress(path));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return Fail("vsock: socket: {}", std::strerror(errno));
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Fail("vsock: connect '{}': {}", path, std::strerror(errno));
  }
  return fd;
}

std::optional<uint32_t> ParseConnectLine(std::string_view line) {
  constexpr std::string_view kPrefix = "CONNECT ";
  if (!line.starts_with(kPrefix)) return std::nullopt;
  std::string_view digits = line.substr(kPrefix.size());
  if (digits.empty() || digits.size() > 10 || digits[0] == '+' || digits[0] == '-') {
    return std::nullopt;
  }
  auto value = ParseNumber(digits);
  if (!value || *value > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(*value);
}

}  // namespace vireo::virtio::vsock
