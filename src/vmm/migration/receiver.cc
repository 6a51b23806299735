#include "vmm/migration/receiver.h"

#include <netdb.h>
#include <sys/socket.h>

#include <chrono>

#include "vmm/migration/stream.h"
#include "vmm/snapshot/state_file.h"

namespace vireo::migration {
namespace {

bool SameLayout(std::span<const RamRange> a, std::span<const RamRange> b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].base != b[i].base || a[i].size != b[i].size) return false;
  }
  return true;
}

Result<snapshot::LoadedSnapshot> ReceiveStream(int fd, uint64_t& pages, uint64_t& bytes) {
  uint8_t preamble[12];
  if (auto got = ReceiveAll(fd, preamble); !got) {
    return Fail("reading the stream header: {}", got.error().message);
  }
  VIREO_TRY_STATUS(CheckPreamble(preamble));
  bytes += sizeof(preamble);
  Frame hello = VIREO_TRY(ReadFrame(fd));
  if (hello.type != FrameType::kHello) {
    return Fail("corrupt migration stream: it does not start with a HELLO frame");
  }
  bytes += kFrameHeaderSize + hello.payload.size();
  const std::vector<RamRange> ram = VIREO_TRY(DecodeHello(hello.payload));
  GuestMemory memory = VIREO_TRY(GuestMemory::Create(ram, MemoryOptions{}));
  std::optional<snapshot::SnapshotState> state;
  for (;;) {
    auto frame = ReadFrame(fd);
    if (!frame) return Fail("the stream broke off: {}", frame.error().message);
    bytes += kFrameHeaderSize + frame->payload.size();
    switch (frame->type) {
      case FrameType::kPages:
        pages += VIREO_TRY(ApplyPages(frame->payload, memory));
        continue;
      case FrameType::kState: {
        if (state) return Fail("corrupt migration stream: two STATE frames");
        auto decoded = snapshot::DecodeStateFile(frame->payload);
        if (!decoded) return Wrap("the VM state", decoded.error());
        if (decoded->type != snapshot::SnapshotType::kFull || !SameLayout(decoded->ram, ram)) {
          return Fail("the VM state's RAM layout differs from the stream's HELLO");
        }
        state = std::move(*decoded);
        continue;
      }
      case FrameType::kEnd:
        if (!state) return Fail("corrupt migration stream: END before the VM state");
        break;
      default:
        return Fail("corrupt migration stream: an unexpected frame");
    }
    break;
  }
  snapshot::LoadedSnapshot loaded;
  loaded.state = std::move(*state);
  loaded.memory.emplace(std::move(memory));
  return loaded;
}

}  // namespace

Status IncomingMigration::Acknowledge() {
  const std::vector<uint8_t> ack = EncodeFrame(FrameType::kAck, EncodeAck(0, "resumed"));
  if (auto sent = SendAll(connection_.get(), ack); !sent) {
    return Fail("acknowledging to the source: {}; the source keeps the VM", sent.error().message);
  }
  connection_.reset();
  return {};
}

void IncomingMigration::Refuse(const std::string& message) {
  (void)SendAll(connection_.get(), EncodeFrame(FrameType::kAck, EncodeAck(1, message)));
  connection_.reset();
}

Result<IncomingMigration> ReceiveMigration(const std::string& uri) {
  const TcpAddress address = VIREO_TRY(ParseUri(uri));
  UniqueFd listener = VIREO_TRY(Listen(address));
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof(bound);
  char port[NI_MAXSERV] = "?";
  if (::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&bound), &bound_len) == 0) {
    ::getnameinfo(reinterpret_cast<sockaddr*>(&bound), bound_len, nullptr, 0, port, sizeof(port),
                  NI_NUMERICSERV);
  }
  // Tools (and the tests) wait for this line before starting the migration.
  fmt::print(stderr, "vireo: waiting for an incoming migration on {}:{}\n", address.host, port);
  UniqueFd connection;
  for (;;) {
    connection.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (connection || errno != EINTR) break;
  }
  if (!connection) return Fail("accepting the migration: {}", std::strerror(errno));
  listener.reset();
  SetTimeouts(connection.get(), IncomingMigration::kIoTimeoutMs);
  const auto start = std::chrono::steady_clock::now();
  uint64_t pages = 0;
  uint64_t bytes = 0;
  auto received = ReceiveStream(connection.get(), pages, bytes);
  if (!received) {
    (void)SendAll(connection.get(),
                  EncodeFrame(FrameType::kAck, EncodeAck(1, received.error().message)));
    return Fail("{} (nothing kept)", received.error().message);
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  return IncomingMigration(
      std::move(connection), std::move(*received),
      fmt::format("received {} pages ({} MiB) in {} ms", pages, bytes >> 20, ms));
}

}  // namespace vireo::migration
