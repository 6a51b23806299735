// libFuzzer target: a hostile vhost-user front-end. The input is a sequence of records that
// either send a message to a Session driving the rng device, or write bytes into the guest
// memory (a memfd) that the session may have mapped, so rings and descriptors can be anything.
// fds are attached the way a front-end would: the memfd once per region a SET_MEM_TABLE claims
// (capped at the protocol's limit), an eventfd for SET_VRING_KICK/CALL/ERR without the no-fd
// bit; any count mismatch the fuzzer makes in the payload is the session's to refuse. A
// message the session answers with kDisconnect starts a new session, as a reconnect would.
//
// The rng device processes its queue inside QueueNotify, which the session calls at every
// activation, so descriptor chains in fuzzed memory are walked without a running event loop.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "base/event_loop.h"
#include "base/log.h"
#include "vhost_user/session.h"
#include "virtio/rng.h"

namespace {

using namespace vireo;
using namespace vireo::vhost_user;

constexpr uint64_t kMemSize = 2 << 20;

struct Env {
  Env() {
    SetLogLevel(static_cast<LogLevel>(-1));  // refusals are expected here; keep the output quiet
    memfd.reset(::memfd_create("fuzz-ram", MFD_CLOEXEC));
    if (::ftruncate(memfd.get(), kMemSize) != 0) abort();
    void* addr = ::mmap(nullptr, kMemSize, PROT_READ | PROT_WRITE, MAP_SHARED, memfd.get(), 0);
    if (addr == MAP_FAILED) abort();
    ram = Mapping(addr, kMemSize);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) abort();
    ours.reset(sv[0]);
    theirs.reset(sv[1]);
    loop = std::move(*EventLoop::Create("fuzz"));  // never started: kicks are not delivered
  }
  void DrainReplies() {
    uint8_t buffer[4096];
    while (::read(ours.get(), buffer, sizeof(buffer)) > 0) {
    }
  }
  UniqueFd memfd, ours, theirs;
  Mapping ram;
  std::unique_ptr<EventLoop> loop;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Env* env = new Env;
  std::memset(env->ram.bytes(), 0, kMemSize);
  virtio::Rng rng;
  auto session = std::make_unique<Session>(rng, *env->loop);
  size_t pos = 0;
  int rounds = 0;
  while (pos < size && rounds++ < 64) {
    const uint8_t op = data[pos++];
    if (op & 1) {  // write into guest memory: u32 offset, u8 length, bytes
      if (size - pos < 5) break;
      uint32_t offset;
      std::memcpy(&offset, data + pos, 4);
      size_t len = std::min<size_t>(data[pos + 4], size - pos - 5);
      pos += 5;
      offset %= kMemSize;
      len = std::min<size_t>(len, kMemSize - offset);
      std::memcpy(env->ram.bytes() + offset, data + pos, len);
      pos += len;
      continue;
    }
    if (size - pos < sizeof(Header)) break;
    Message message;
    std::memcpy(&message.header, data + pos, sizeof(Header));
    pos += sizeof(Header);
    message.header.flags = (message.header.flags & ~kVersionMask) | kVersion;
    message.header.size =
        static_cast<uint32_t>(std::min<size_t>({message.header.size, size - pos, kMaxPayload}));
    std::memcpy(message.payload.data(), data + pos, message.header.size);
    pos += message.header.size;
    const auto request = static_cast<Request>(message.header.request);
    if (request == Request::kSetMemTable && message.header.size >= 4) {
      uint32_t n;
      std::memcpy(&n, message.payload.data(), 4);
      for (uint32_t i = 0; i < std::min<uint32_t>(n, kMaxFds); ++i) {
        message.fds.emplace_back(::dup(env->memfd.get()));
      }
    } else if ((request == Request::kSetVringKick || request == Request::kSetVringCall ||
                request == Request::kSetVringErr) &&
               (op & 2) == 0) {
      message.fds.emplace_back(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    }
    if (session->Handle(message, env->theirs.get()) == Session::Outcome::kDisconnect) {
      session = std::make_unique<Session>(rng, *env->loop);
    }
    env->DrainReplies();
  }
  return 0;
}
