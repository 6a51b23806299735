// A vhost-user front-end for tests: the other end of a socketpair whose back-end end is served
// by ServeConnection on a thread, a memfd standing in for guest RAM (mapped on both sides, as
// QEMU's memory-backend-memfd is), and helpers that lay out one split ring in it.
#pragma once

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <thread>
#include <vector>

#include "base/event_loop.h"
#include "base/mapping.h"
#include "base/unique_fd.h"
#include "vhost_user/connection.h"
#include "vhost_user/protocol.h"
#include "vhost_user/server.h"
#include "virtio/queue.h"

namespace vireo::vhost_user::testing {

// Guest RAM: kRamSize bytes at guest-physical kRamGpa, the front-end's "virtual" address
// kRamUser (never dereferenced; only translated), kFileOffset into the memfd.
inline constexpr uint64_t kRamGpa = 0x100000;
inline constexpr uint64_t kRamSize = 0x100000;
inline constexpr uint64_t kRamUser = 0x7f0000000000;
inline constexpr uint64_t kFileOffset = 0x1000;
// One ring of kRingSize at the start of RAM; data buffers from kBufferGpa.
inline constexpr uint16_t kRingSize = 8;
inline constexpr uint64_t kDescGpa = kRamGpa;
inline constexpr uint64_t kAvailGpa = kRamGpa + 0x1000;
inline constexpr uint64_t kUsedGpa = kRamGpa + 0x2000;
inline constexpr uint64_t kBufferGpa = kRamGpa + 0x10000;

inline UniqueFd MakeEventFd() { return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)); }

// True when `fd` becomes readable within timeout_ms.
inline bool WaitReadable(int fd, int timeout_ms = 5000) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN) != 0;
}

class FakeFrontend {
 public:
  FakeFrontend(virtio::VirtioDevice& device, EventLoop& loop) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0) {
      sock_.reset(sv[0]);
      backend_.reset(sv[1]);
    }
    memfd_.reset(::memfd_create("fake-guest-ram", MFD_CLOEXEC));
    if (::ftruncate(memfd_.get(), kFileOffset + kRamSize) == 0) {
      void* addr = ::mmap(nullptr, kFileOffset + kRamSize, PROT_READ | PROT_WRITE, MAP_SHARED,
                          memfd_.get(), 0);
      if (addr != MAP_FAILED) ram_ = Mapping(addr, kFileOffset + kRamSize);
    }
    server_ = std::thread([this, &device, &loop] {
      handled_ = ServeConnection(backend_.get(), device, loop);
      backend_.reset();  // the front-end sees EOF, as when a back-end goes away
    });
  }
  ~FakeFrontend() {
    sock_.reset();  // ends ServeConnection
    if (server_.joinable()) server_.join();
  }

  bool ok() const { return sock_.valid() && static_cast<bool>(ram_); }
  int sock() const { return sock_.get(); }
  int memfd() const { return memfd_.get(); }
  uint64_t handled() {
    if (server_.joinable()) server_.join();
    return handled_;
  }

  // Guest memory as the front-end sees it.
  uint8_t* Host(uint64_t gpa) const { return ram_.bytes() + kFileOffset + (gpa - kRamGpa); }
  template <typename T>
  void Put(uint64_t gpa, const T& value) {
    std::memcpy(Host(gpa), &value, sizeof(T));
  }
  template <typename T>
  T Get(uint64_t gpa) const {
    T value;
    std::memcpy(&value, Host(gpa), sizeof(T));
    return value;
  }
  static uint64_t User(uint64_t gpa) { return gpa - kRamGpa + kRamUser; }

  bool Send(Request request, std::span<const uint8_t> payload = {}, std::span<const int> fds = {},
            uint32_t flags = kVersion) {
    return static_cast<bool>(
        SendMessage(sock_.get(), Header{static_cast<uint32_t>(request), flags, 0}, payload, fds));
  }
  template <typename T>
  bool SendObj(Request request, const T& value, std::span<const int> fds = {},
               uint32_t flags = kVersion) {
    return Send(request, BytesOf(value), fds, flags);
  }
  // The next reply, or nullopt when the back-end closed the connection (or sent nothing in 5 s).
  std::optional<Message> Receive() {
    if (!WaitReadable(sock_.get())) return std::nullopt;
    auto message = ReceiveMessage(sock_.get());
    if (!message || !*message) return std::nullopt;
    return std::move(**message);
  }
  std::optional<uint64_t> ReceiveU64() {
    auto reply = Receive();
    if (!reply) return std::nullopt;
    return reply->As<uint64_t>();
  }
  std::optional<uint64_t> GetU64(Request request) {
    if (!Send(request)) return std::nullopt;
    return ReceiveU64();
  }
  // Sends with NEED_REPLY and returns the REPLY_ACK value (0 = success); nullopt on disconnect.
  template <typename T>
  std::optional<uint64_t> Ack(Request request, const T& value, std::span<const int> fds = {}) {
    if (!SendObj(request, value, fds, kVersion | kFlagNeedReply)) return std::nullopt;
    return ReceiveU64();
  }
  std::optional<uint64_t> AckBytes(Request request, std::span<const uint8_t> payload,
                                   std::span<const int> fds = {}) {
    if (!Send(request, payload, fds, kVersion | kFlagNeedReply)) return std::nullopt;
    return ReceiveU64();
  }
  // Whether the back-end still answers.
  bool Alive() { return GetU64(Request::kGetFeatures).has_value(); }

  // Features and protocol features (REPLY_ACK at least), owner, and the memory table.
  bool Handshake(uint64_t protocol_features = kProtocolFReplyAck) {
    auto features = GetU64(Request::kGetFeatures);
    if (!features) return false;
    if (!GetU64(Request::kGetProtocolFeatures)) return false;
    if (Ack(Request::kSetProtocolFeatures, protocol_features) != std::optional<uint64_t>(0)) {
      return false;
    }
    if (!Send(Request::kSetOwner)) return false;
    if (Ack(Request::kSetFeatures, *features) != std::optional<uint64_t>(0)) return false;
    return SetMemTable() == std::optional<uint64_t>(0);
  }
  std::optional<uint64_t> SetMemTable(MemoryRegion region = {kRamGpa, kRamSize, kRamUser,
                                                             kFileOffset},
                                      int fd = -1) {
    struct {
      MemoryTableHeader header;
      MemoryRegion region;
    } table{{1, 0}, region};
    const int fds[] = {fd >= 0 ? fd : memfd_.get()};
    return Ack(Request::kSetMemTable, table, fds);
  }
  // Describes ring `index` at the standard layout, gives it kick and call eventfds and enables
  // it. Returns the ack of the enable (which activates the device when every ring is ready).
  std::optional<uint64_t> StartRing(uint32_t index, uint16_t base = 0) {
    if (Ack(Request::kSetVringNum, VringState{index, kRingSize}) != std::optional<uint64_t>(0)) {
      return 1;
    }
    if (Ack(Request::kSetVringBase, VringState{index, base}) != std::optional<uint64_t>(0)) {
      return 1;
    }
    VringAddr addr{index, 0, User(kDescGpa), User(kUsedGpa), User(kAvailGpa), 0};
    if (Ack(Request::kSetVringAddr, addr) != std::optional<uint64_t>(0)) return 1;
    kick_ = MakeEventFd();
    call_ = MakeEventFd();
    const int kick[] = {kick_.get()};
    const int call[] = {call_.get()};
    if (Ack(Request::kSetVringCall, uint64_t{index}, call) != std::optional<uint64_t>(0)) return 1;
    if (Ack(Request::kSetVringKick, uint64_t{index}, kick) != std::optional<uint64_t>(0)) return 1;
    return Ack(Request::kSetVringEnable, VringState{index, 1});
  }

  // Puts a one-descriptor chain (device-writable when `writable`) for `len` bytes at
  // kBufferGpa + head * 0x1000 on the avail ring, and kicks when asked.
  void PostBuffer(uint16_t head, uint32_t len, bool writable, bool kick = true, uint64_t addr = 0) {
    virtio::Descriptor desc{addr != 0 ? addr : kBufferGpa + head * 0x1000ull, len,
                            static_cast<uint16_t>(writable ? virtio::kDescFWrite : 0), 0};
    Put(kDescGpa + head * sizeof(desc), desc);
    const uint16_t idx = Get<uint16_t>(kAvailGpa + 2);
    Put<uint16_t>(kAvailGpa + 4 + 2 * (idx % kRingSize), head);
    // EVENT_IDX (negotiated by Handshake): used_event asks for a notification once the device
    // moves past the used index we have seen, as a driver waiting for this buffer does.
    Put<uint16_t>(kAvailGpa + 4 + 2 * kRingSize, UsedIdx());
    Put<uint16_t>(kAvailGpa + 2, static_cast<uint16_t>(idx + 1));
    if (kick) Kick();
  }
  void Kick() {
    const uint64_t one = 1;
    (void)!::write(kick_.get(), &one, sizeof(one));
  }
  // Waits for the call eventfd and drains it.
  bool WaitCall(int timeout_ms = 5000) {
    if (!WaitReadable(call_.get(), timeout_ms)) return false;
    uint64_t count;
    return ::read(call_.get(), &count, sizeof(count)) == sizeof(count);
  }
  uint16_t UsedIdx() const { return Get<uint16_t>(kUsedGpa + 2); }
  virtio::UsedElement Used(uint16_t slot) const {
    return Get<virtio::UsedElement>(kUsedGpa + 4 + 8 * (slot % kRingSize));
  }
  int kick_fd() const { return kick_.get(); }
  int call_fd() const { return call_.get(); }

 private:
  UniqueFd sock_;
  UniqueFd backend_;
  UniqueFd memfd_;
  Mapping ram_;
  UniqueFd kick_;
  UniqueFd call_;
  std::thread server_;
  uint64_t handled_ = 0;
};

}  // namespace vireo::vhost_user::testing
