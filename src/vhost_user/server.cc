#include "vhost_user/server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"
#include "vhost_user/connection.h"

namespace vireo::vhost_user {
namespace {

Result<sockaddr_un> Address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Fail("socket path '{}' must be 1 to {} bytes", path, sizeof(addr.sun_path) - 1);
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  return addr;
}

// A socket file left behind by a back-end that was killed answers connect() with ECONNREFUSED.
Status RemoveStaleSocket(const std::string& path, const sockaddr_un& addr) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return {};  // nothing there
  if (!S_ISSOCK(st.st_mode)) return Fail("{} exists and is not a socket; not replacing it", path);
  UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return Fail("socket: {}", std::strerror(errno));
  if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    return Fail("{} is in use by another back-end", path);
  }
  if (errno != ECONNREFUSED) {
    return Fail("{} exists and cannot be probed: {}", path, std::strerror(errno));
  }
  if (::unlink(path.c_str()) != 0) {
    return Fail("cannot remove the stale socket {}: {}", path, std::strerror(errno));
  }
  return {};
}

}  // namespace

uint64_t ServeConnection(int conn_fd, virtio::VirtioDevice& device, EventLoop& loop, int stop_fd) {
  Session session(device, loop);
  uint64_t handled = 0;
  for (;;) {
    auto message = ReceiveMessage(conn_fd, stop_fd);
    if (!message) {
      Log(LogLevel::kWarn, "vhost-user: {}; closing the connection", message.error().message);
      break;
    }
    if (!*message) break;  // the front-end hung up
    handled++;
    if (session.Handle(**message, conn_fd) == Session::Outcome::kDisconnect) break;
  }
  return handled;
}

Result<Server> Server::Listen(const std::string& path) {
  const sockaddr_un addr = VIREO_TRY(Address(path));
  VIREO_TRY_STATUS(RemoveStaleSocket(path, addr));
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return Fail("socket: {}", std::strerror(errno));
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Fail("cannot bind {}: {}", path, std::strerror(errno));
  }
  if (::listen(fd.get(), 4) != 0) {
    int err = errno;
    ::unlink(path.c_str());
    return Fail("cannot listen on {}: {}", path, std::strerror(err));
  }
  return Server(path, std::move(fd));
}

Server::~Server() {
  if (fd_) ::unlink(path_.c_str());
}

Status Server::Serve(virtio::VirtioDevice& device, EventLoop& loop, int stop_fd, bool once) {
  for (;;) {
    pollfd fds[2] = {{fd_.get(), POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(fds, stop_fd >= 0 ? 2 : 1, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("poll: {}", std::strerror(errno));
    if (stop_fd >= 0 && (fds[1].revents & POLLIN) != 0) return {};
    UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!conn) {
      if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN) continue;
      return Fail("accept on {}: {}", path_, std::strerror(errno));
    }
    connections_++;
    Log(LogLevel::kInfo, "vhost-user: front-end {} connected on {}", connections_, path_);
    uint64_t handled = ServeConnection(conn.get(), device, loop, stop_fd);
    Log(LogLevel::kInfo, "vhost-user: front-end {} gone after {} messages; device reset",
        connections_, handled);
    if (once) return {};
    // A stop that arrived while serving ends the loop at the top.
  }
}

}  // namespace vireo::vhost_user
