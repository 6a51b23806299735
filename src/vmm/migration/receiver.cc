#include "vmm/migration/receiver.h"

#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>

#include "base/log.h"
#include "block/open_image.h"
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

// The destination's images for a block migration's DISKS frame: as many as the source has,
// each of the same size, or an error saying what to pass instead.
Result<std::vector<std::unique_ptr<block::Image>>> OpenDiskTargets(
    std::span<const uint64_t> sizes, std::span<const DiskConfig> targets) {
  std::string wanted;
  for (size_t i = 0; i < sizes.size(); ++i) {
    wanted += fmt::format("{}disk {}: {} bytes", i ? ", " : "", i, sizes[i]);
  }
  if (targets.empty() && !sizes.empty()) {
    return Fail(
        "the source sends its disks' contents (block migration) but this side has nowhere to "
        "put them: pass `--disk path=FILE[,format=raw|qcow2]` to `vireo run --incoming` once per "
        "source disk, in order, each an image of the same size ({})",
        wanted);
  }
  if (targets.size() != sizes.size()) {
    return Fail(
        "the source has {} disk(s) ({}) but this side was given {} --disk option(s): pass one "
        "per source disk, in order",
        sizes.size(), wanted, targets.size());
  }
  std::vector<std::unique_ptr<block::Image>> images;
  for (size_t i = 0; i < sizes.size(); ++i) {
    block::ImageOpenOptions open;
    open.format = targets[i].format;
    auto image = block::OpenImage(targets[i].path, open);
    if (!image) return Wrap(fmt::format("--disk path={}", targets[i].path), image.error());
    if ((*image)->size() != sizes[i]) {
      return Fail(
          "--disk path={} is {} bytes but the source's disk {} is {} bytes: block migration "
          "needs an image of the same virtual size (`vireo img create -f {} {} {}`, or `vireo "
          "img resize`)",
          targets[i].path, (*image)->size(), i, sizes[i], (*image)->format(), targets[i].path,
          sizes[i]);
    }
    images.push_back(std::move(*image));
  }
  return images;
}

// `postcopy` receives POSTCOPY's missing-page bitmap when the source switches to post-copy
// (the stream then goes on, in the post-copy threads).
Result<snapshot::LoadedSnapshot> ReceiveStream(int fd, std::span<const DiskConfig> disk_targets,
                                               uint64_t& pages, uint64_t& bytes,
                                               uint64_t& disk_bytes,
                                               std::optional<std::vector<uint64_t>>& postcopy,
                                               const PrepareVm& prepare) {
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
  std::unique_ptr<accel::Vm> vm;
  if (prepare) {
    auto prepared = prepare(memory);
    if (prepared) {
      vm = std::move(*prepared);
    } else {
      Log(LogLevel::kWarn, "--incoming: creating the VM ahead failed ({}); it comes after",
          prepared.error().message);
    }
  }
  std::optional<snapshot::SnapshotState> state;
  // Block migration: DISKS comes right after HELLO; the images close (unlocked) on return,
  // before the VM re-opens them by path.
  std::optional<std::vector<std::unique_ptr<block::Image>>> images;
  std::vector<block::Image*> image_list;
  for (bool first = true;; first = false) {
    auto frame = ReadFrame(fd);
    if (!frame) return Fail("the stream broke off: {}", frame.error().message);
    bytes += kFrameHeaderSize + frame->payload.size();
    if (first && frame->type != FrameType::kDisks && !disk_targets.empty()) {
      return Fail(
          "this side was given --disk but the source does not send its disks' contents: migrate "
          "with \"block\": true, or leave out --disk to re-open the source's disk paths (shared "
          "storage)");
    }
    switch (frame->type) {
      case FrameType::kDisks: {
        if (!first) return Fail("corrupt migration stream: a DISKS frame after the first frame");
        const std::vector<uint64_t> sizes = VIREO_TRY(DecodeDisks(frame->payload));
        images = VIREO_TRY(OpenDiskTargets(sizes, disk_targets));
        for (auto& image : *images) image_list.push_back(image.get());
        continue;
      }
      case FrameType::kDiskChunk:
        if (!images) return Fail("corrupt migration stream: a DISK_CHUNK without DISKS");
        disk_bytes += VIREO_TRY(ApplyDiskChunk(frame->payload, image_list));
        continue;
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
        if (images && decoded->config.disks.size() != images->size()) {
          return Fail("corrupt migration stream: the VM state has {} disks, DISKS announced {}",
                      decoded->config.disks.size(), images->size());
        }
        state = std::move(*decoded);
        continue;
      }
      case FrameType::kPostcopy:
        if (!state) return Fail("corrupt migration stream: POSTCOPY before the VM state");
        postcopy = VIREO_TRY(DecodePostcopy(frame->payload, memory.total_size() / kPageSize));
        [[fallthrough]];  // the disks are complete, as at END
      case FrameType::kEnd:
        if (!state) return Fail("corrupt migration stream: END before the VM state");
        for (size_t i = 0; images && i < images->size(); ++i) {
          // Durable before the ACK: from then on the destination's disk is the only copy.
          if (auto flushed = (*images)[i]->Flush(); !flushed) {
            return Fail("flushing --disk path={}: {}", disk_targets[i].path,
                        flushed.error().message);
          }
        }
        break;
      default:
        return Fail("corrupt migration stream: an unexpected frame");
    }
    break;
  }
  snapshot::LoadedSnapshot loaded;
  loaded.state = std::move(*state);
  loaded.memory.emplace(std::move(memory));
  loaded.vm = std::move(vm);
  return loaded;
}

// After a refusal: closing with the source's frames unread would reset the connection, and a
// reset can discard the refusal before the source reads it. So stop sending and read until
// the source, having read the refusal, closes (or a few seconds pass).
void DrainUntilClosed(int fd) {
  ::shutdown(fd, SHUT_WR);
  SetTimeouts(fd, 500);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  uint8_t sink[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    const ssize_t n = ::recv(fd, sink, sizeof(sink), 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)) break;
  }
}

}  // namespace

Status IncomingMigration::Acknowledge() {
  if (postcopy_) return postcopy_->Acknowledge();  // the connection carries pages on
  const std::vector<uint8_t> ack = EncodeFrame(FrameType::kAck, EncodeAck(0, "resumed"));
  if (auto sent = SendAll(connection_.get(), ack); !sent) {
    return Fail("acknowledging to the source: {}; the source keeps the VM", sent.error().message);
  }
  connection_.reset();
  return {};
}

void IncomingMigration::Refuse(const std::string& message) {
  if (postcopy_) {
    postcopy_->Refuse(message);
    postcopy_.reset();
    DrainUntilClosed(connection_.get());
    connection_.reset();
    return;
  }
  (void)SendAll(connection_.get(), EncodeFrame(FrameType::kAck, EncodeAck(1, message)));
  DrainUntilClosed(connection_.get());
  connection_.reset();
}

Result<IncomingMigration> ReceiveMigration(const std::string& uri,
                                           std::span<const DiskConfig> disks,
                                           const PrepareVm& prepare) {
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
  uint64_t disk_bytes = 0;
  std::optional<std::vector<uint64_t>> missing;
  auto received =
      ReceiveStream(connection.get(), disks, pages, bytes, disk_bytes, missing, prepare);
  // Post-copy: fault handling starts before the VM is rebuilt (restoring it may touch a page
  // that is still at the source).
  std::unique_ptr<PostcopyReceiver> postcopy;
  if (received && missing) {
    auto started =
        PostcopyReceiver::Start(connection.get(), *received->memory, std::move(*missing));
    if (!started) {
      received = tl::unexpected(started.error());
    } else {
      postcopy = std::move(*started);
    }
  }
  if (!received) {
    (void)SendAll(connection.get(),
                  EncodeFrame(FrameType::kAck, EncodeAck(1, received.error().message)));
    DrainUntilClosed(connection.get());
    return Fail("{} (nothing kept)", received.error().message);
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  std::string summary =
      disks.empty() ? fmt::format("received {} pages ({} MiB) in {} ms", pages, bytes >> 20, ms)
                    : fmt::format("received {} pages and {} MiB of disk ({} MiB) in {} ms", pages,
                                  disk_bytes >> 20, bytes >> 20, ms);
  if (postcopy) {
    summary += fmt::format("; post-copy: {} pages to come", postcopy->missing_at_start());
  }
  return IncomingMigration(std::move(connection), std::move(*received), std::move(summary),
                           std::move(postcopy));
}

}  // namespace vireo::migration
