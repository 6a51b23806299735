#include "vhost_user/connection.h"

#include <poll.h>
#include <sys/socket.h>

#include <cerrno>

namespace vireo::vhost_user {
namespace {

// Waits until `fd` is readable; false when `stop_fd` fired first (or poll failed).
bool WaitReadable(int fd, int stop_fd) {
  if (stop_fd < 0) return true;  // the blocking recv below does the waiting
  for (;;) {
    pollfd fds[2] = {{fd, POLLIN, 0}, {stop_fd, POLLIN, 0}};
    int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN) != 0) return false;
    return true;
  }
}

// Reads exactly out.size() bytes of a message's remainder; fds arriving here break framing.
Status ReadRest(int fd, int stop_fd, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    if (!WaitReadable(fd, stop_fd)) return Fail("stopped while reading a message");
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    iovec iov{out.data() + done, out.size() - done};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("reading from the socket: {}", std::strerror(errno));
    if (n == 0) return Fail("the front-end closed the connection inside a message");
    // Close anything smuggled in mid-message before refusing it.
    bool had_fds = false;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        UniqueFd closer(received);
      }
      had_fds = true;
    }
    if (had_fds) return Fail("fds arrived after the first byte of a message");
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Result<std::optional<Message>> ReceiveMessage(int fd, int stop_fd) {
  Message message;
  auto* header_bytes = reinterpret_cast<uint8_t*>(&message.header);
  // The first recvmsg takes the fds, which the sender attached to its first byte.
  ssize_t n;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
  msghdr msg{};
  for (;;) {
    if (!WaitReadable(fd, stop_fd)) return Fail("stopped while waiting for a message");
    iovec iov{header_bytes, sizeof(Header)};
    msg = msghdr{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  if (n < 0) {
    if (errno == ECONNRESET) return std::optional<Message>();
    return Fail("reading from the socket: {}", std::strerror(errno));
  }
  if (n == 0) return std::optional<Message>();  // orderly close between messages
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received;
      std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      message.fds.emplace_back(received);
    }
  }
  // The kernel drops (closes) the fds that did not fit and says so with MSG_CTRUNC.
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    return Fail("a message carried more than {} fds", kMaxFds);
  }
  if (static_cast<size_t>(n) < sizeof(Header)) {
    VIREO_TRY_STATUS(ReadRest(fd, stop_fd, {header_bytes + n, sizeof(Header) - n}));
  }
  const Header& h = message.header;
  if ((h.flags & kVersionMask) != kVersion) {
    return Fail("{} with protocol version {}, expected 1", RequestName(h.request),
                h.flags & kVersionMask);
  }
  if (h.size > kMaxPayload) {
    return Fail("{} with a {}-byte payload (at most {} accepted)", RequestName(h.request), h.size,
                kMaxPayload);
  }
  VIREO_TRY_STATUS(ReadRest(fd, stop_fd, std::span(message.payload).first(h.size)));
  return std::optional<Message>(std::move(message));
}

Status SendMessage(int fd, Header header, std::span<const uint8_t> payload,
                   std::span<const int> fds) {
  if (payload.size() > kMaxPayload || fds.size() > kMaxFds) {
    return Fail("message too large to send");
  }
  header.size = static_cast<uint32_t>(payload.size());
  iovec iov[2] = {{&header, sizeof(header)},
                  {const_cast<uint8_t*>(payload.data()), payload.size()}};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)] = {};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  const size_t total = sizeof(header) + payload.size();
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Fail("writing to the socket: {}", std::strerror(errno));
  // Messages are a few hundred bytes; a Unix stream socket takes them whole or blocks.
  if (static_cast<size_t>(n) != total) return Fail("short write to the socket");
  return {};
}

Status SendReply(int fd, uint32_t request, std::span<const uint8_t> payload) {
  return SendMessage(fd, Header{request, kVersion | kFlagReply, 0}, payload);
}

}  // namespace vireo::vhost_user
