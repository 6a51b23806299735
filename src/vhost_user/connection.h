// Message framing over the vhost-user Unix socket: one header, its payload and the fds that
// came with it (SCM_RIGHTS). Every fd received is owned (UniqueFd) from the moment it arrives,
// so a message that is refused closes what it carried.
//
// What the framing refuses (the caller closes the connection): a payload longer than
// kMaxPayload, more than kMaxFds fds (MSG_CTRUNC), fds arriving after the first byte, a version
// other than 1, and a stream that ends inside a message. An orderly close between messages is
// not an error.
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vhost_user/protocol.h"

namespace vireo::vhost_user {

struct Message {
  Header header{};
  std::array<uint8_t, kMaxPayload> payload{};  // the first header.size bytes are valid
  std::vector<UniqueFd> fds;

  std::span<const uint8_t> body() const { return std::span(payload).first(header.size); }
  bool need_reply() const { return (header.flags & kFlagNeedReply) != 0; }

  // The payload as T when it is exactly sizeof(T) bytes (every fixed-size request).
  template <typename T>
  requires std::is_trivially_copyable_v<T> std::optional<T> As()
  const {
    if (header.size != sizeof(T)) return std::nullopt;
    T value;
    std::memcpy(&value, payload.data(), sizeof(T));
    return value;
  }
};

// Reads one message from `fd` (blocking). nullopt: the peer closed the connection between
// messages. `stop_fd` (optional, -1 for none): when it becomes readable the read is abandoned
// with an error, so a stalled peer cannot keep a stopping backend waiting.
Result<std::optional<Message>> ReceiveMessage(int fd, int stop_fd = -1);

// Sends header + payload (+ fds as SCM_RIGHTS) in one sendmsg; the header's size is set from
// the payload. Never raises SIGPIPE.
Status SendMessage(int fd, Header header, std::span<const uint8_t> payload,
                   std::span<const int> fds = {});

// A reply to `request`: same request type, version 1 with the REPLY flag.
Status SendReply(int fd, uint32_t request, std::span<const uint8_t> payload);

template <typename T>
std::span<const uint8_t> BytesOf(const T& value) {
  return {reinterpret_cast<const uint8_t*>(&value), sizeof(T)};
}

}  // namespace vireo::vhost_user
