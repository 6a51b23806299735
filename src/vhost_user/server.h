// The listening side of a vhost-user back-end: a Unix socket at a path, front-ends served one
// at a time. When a front-end disconnects (or breaks the protocol) its Session is destroyed,
// which resets the device, and the next connection is accepted: QEMU started with
// `-chardev socket,...,reconnect=N` finds the back-end again after it restarts, and a
// front-end restarting finds it still there. With `once`, Serve returns after the first
// front-end has gone.
#pragma once

#include <string>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "vhost_user/session.h"
#include "virtio/device.h"

namespace vireo::vhost_user {

// Serves one connected front-end until it disconnects, breaks the protocol, or `stop_fd`
// (optional) becomes readable. Returns how many messages were handled.
uint64_t ServeConnection(int conn_fd, virtio::VirtioDevice& device, EventLoop& loop,
                         int stop_fd = -1);

class Server {
 public:
  // Binds and listens on `path`. An existing socket file nobody listens on (left by a back-end
  // that was killed) is replaced; one that answers is an error, as is any other file there.
  static Result<Server> Listen(const std::string& path);
  Server(Server&&) = default;
  Server& operator=(Server&&) = default;
  ~Server();  // removes the socket file

  // Accepts and serves front-ends until `stop_fd` is readable, or, with `once`, until the first
  // one disconnects.
  Status Serve(virtio::VirtioDevice& device, EventLoop& loop, int stop_fd, bool once);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }
  uint64_t connections() const { return connections_; }

 private:
  Server(std::string path, UniqueFd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  UniqueFd fd_;
  uint64_t connections_ = 0;
};

}  // namespace vireo::vhost_user
