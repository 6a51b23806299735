#include "vhost_user/session.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/log.h"

namespace vireo::vhost_user {
namespace {

constexpr uint32_t kDeviceIdNet = 1;  // virtio 1.2, 5 "Device Types"
constexpr uint32_t kDeviceIdBlock = 2;

// Requests answered with a payload of their own rather than a REPLY_ACK.
bool HasOwnReply(uint32_t request) {
  switch (static_cast<Request>(request)) {
    case Request::kGetFeatures:
    case Request::kGetProtocolFeatures:
    case Request::kGetQueueNum:
    case Request::kGetVringBase:
    case Request::kGetConfig:
      return true;
    default:
      return false;
  }
}

// Kick, call and err fds must be eventfds: the back-end reads 8 bytes from a kick fd whenever
// epoll says it is readable, and a pipe or socket that stays readable would spin the I/O
// thread. Non-blocking, so a saturated counter cannot block a call.
Status CheckEventFd(int fd) {
  char link[64];
  std::string path = "/proc/self/fd/" + std::to_string(fd);
  ssize_t n = ::readlink(path.c_str(), link, sizeof(link) - 1);
  if (n < 0) return Fail("cannot inspect the fd: {}", std::strerror(errno));
  if (std::string_view(link, static_cast<size_t>(n)) != "anon_inode:[eventfd]") {
    return Fail("the fd is not an eventfd");
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
    return Fail("cannot make the eventfd non-blocking: {}", std::strerror(errno));
  }
  return {};
}

}  // namespace

uint64_t Session::OfferedFeatures(const virtio::VirtioDevice& device) {
  return (device.device_features() & virtio::kDeviceFeatureMask) | virtio::kFVersion1 |
         virtio::kFIndirectDesc | virtio::kFEventIdx | kFProtocolFeatures;
}

uint64_t Session::OfferedProtocolFeatures(const virtio::VirtioDevice& device) {
  uint64_t features = kProtocolFMq | kProtocolFReplyAck;
  // QEMU's vhost-user-blk reads the whole config space from the back-end (and refuses a
  // back-end without CONFIG); net and rng configs come from QEMU itself.
  if (device.device_type() == kDeviceIdBlock) features |= kProtocolFConfig;
  return features;
}

Session::Session(virtio::VirtioDevice& device, EventLoop& loop)
    : device_(device),
      loop_(loop),
      offered_features_(OfferedFeatures(device)),
      offered_protocol_features_(OfferedProtocolFeatures(device)),
      interrupt_(device.num_queues()),
      rings_(device.num_queues()) {
  queues_.reserve(device.num_queues());
  for (uint16_t i = 0; i < device.num_queues(); ++i) queues_.emplace_back(device.max_queue_size());
}

Session::~Session() { Deactivate(); }

Session::Outcome Session::Handle(Message& message, int reply_fd) {
  counters_.messages++;
  const uint32_t request = message.header.request;
  Log(LogLevel::kDebug, "vhost-user: {} ({}), flags {:#x}, {} bytes, {} fds", RequestName(request),
      request, message.header.flags, message.header.size, message.fds.size());
  if (Status shape = CheckShape(message); !shape) {
    counters_.violations++;
    Log(LogLevel::kError, "vhost-user: malformed {} ({}): closing the connection",
        RequestName(request), shape.error().message);
    return Outcome::kDisconnect;
  }
  Reply reply;
  Status status = Dispatch(message, reply);
  if (HasOwnReply(request)) {
    if (!status) {
      // A GET request has no way to report failure but silence, which would hang the
      // front-end: close instead.
      counters_.violations++;
      Log(LogLevel::kError, "vhost-user: {}: {}: closing the connection", RequestName(request),
          status.error().message);
      return Outcome::kDisconnect;
    }
    if (Status sent = SendReply(reply_fd, request, std::span(reply.bytes).first(reply.size));
        !sent) {
      Log(LogLevel::kError, "vhost-user: replying to {}: {}", RequestName(request),
          sent.error().message);
      return Outcome::kDisconnect;
    }
    return Outcome::kContinue;
  }
  if (!status) {
    counters_.refused++;
    Log(LogLevel::kWarn, "vhost-user: {} refused: {}", RequestName(request),
        status.error().message);
  }
  // REPLY_ACK: a u64, zero for success.
  if (message.need_reply() && (protocol_features_ & kProtocolFReplyAck) != 0) {
    const uint64_t ack = status ? 0 : 1;
    if (!SendReply(reply_fd, request, BytesOf(ack))) return Outcome::kDisconnect;
  }
  return Outcome::kContinue;
}

// The size and fd count every request must have, whatever its values.
Status Session::CheckShape(const Message& m) const {
  const uint32_t size = m.header.size;
  const size_t fds = m.fds.size();
  auto want = [&](uint32_t want_size, size_t want_fds) -> Status {
    if (size != want_size) return Fail("payload of {} bytes, expected {}", size, want_size);
    if (fds != want_fds) return Fail("{} fds, expected {}", fds, want_fds);
    return {};
  };
  switch (static_cast<Request>(m.header.request)) {
    case Request::kGetFeatures:
    case Request::kSetOwner:
    case Request::kResetOwner:
    case Request::kGetProtocolFeatures:
    case Request::kGetQueueNum:
      return want(0, 0);
    case Request::kSetFeatures:
    case Request::kSetProtocolFeatures:
      return want(sizeof(uint64_t), 0);
    case Request::kSetVringNum:
    case Request::kSetVringBase:
    case Request::kGetVringBase:
    case Request::kSetVringEnable:
      return want(sizeof(VringState), 0);
    case Request::kSetVringAddr:
      return want(sizeof(VringAddr), 0);
    case Request::kSetVringKick:
    case Request::kSetVringCall:
    case Request::kSetVringErr: {
      auto value = m.As<uint64_t>();
      if (!value) return Fail("payload of {} bytes, expected 8", size);
      return want(sizeof(uint64_t), (*value & kVringNoFd) != 0 ? 0 : 1);
    }
    case Request::kSetMemTable: {
      if (size < sizeof(MemoryTableHeader)) return Fail("payload of {} bytes", size);
      MemoryTableHeader h;
      std::memcpy(&h, m.payload.data(), sizeof(h));
      if (h.nregions == 0 || h.nregions > kMaxMemRegions) {
        return Fail("{} regions, expected 1 to {}", h.nregions, kMaxMemRegions);
      }
      if (size < sizeof(h) + h.nregions * sizeof(MemoryRegion)) {
        return Fail("payload of {} bytes cannot hold {} regions", size, h.nregions);
      }
      if (fds != h.nregions) return Fail("{} fds for {} regions", fds, h.nregions);
      return {};
    }
    case Request::kGetConfig:
    case Request::kSetConfig: {
      if (size < sizeof(ConfigHeader)) return Fail("payload of {} bytes", size);
      ConfigHeader h;
      std::memcpy(&h, m.payload.data(), sizeof(h));
      if (h.size > kMaxConfigSize)
        return Fail("config size {} (at most {})", h.size, kMaxConfigSize);
      return want(static_cast<uint32_t>(sizeof(h) + h.size), 0);
    }
    default:
      // Requests Vireo does not implement: refused in Dispatch (their fds are closed).
      return {};
  }
}

Status Session::Dispatch(Message& m, Reply& reply) {
  switch (static_cast<Request>(m.header.request)) {
    case Request::kGetFeatures:
      reply.Set(offered_features_);
      return {};
    case Request::kSetFeatures:
      return SetFeatures(*m.As<uint64_t>());
    case Request::kGetProtocolFeatures:
      reply.Set(offered_protocol_features_);
      return {};
    case Request::kSetProtocolFeatures: {
      const uint64_t features = *m.As<uint64_t>();
      if ((features & ~offered_protocol_features_) != 0) {
        return Fail("protocol features {:#x} were not offered",
                    features & ~offered_protocol_features_);
      }
      protocol_features_ = features;
      return {};
    }
    case Request::kSetOwner:
      // Nothing to claim: one front-end is served at a time and this is it.
      owner_ = true;
      return {};
    case Request::kResetOwner:
      ResetState();
      return {};
    case Request::kGetQueueNum: {
      // QEMU's vhost-user net counts queue pairs here; every other device counts queues.
      uint64_t n = device_.num_queues();
      if (device_.device_type() == kDeviceIdNet) n /= 2;
      reply.Set(n);
      return {};
    }
    case Request::kSetMemTable:
      return SetMemTable(m);
    case Request::kSetVringNum:
      return SetVringNum(*m.As<VringState>());
    case Request::kSetVringAddr:
      return SetVringAddr(*m.As<VringAddr>());
    case Request::kSetVringBase:
      return SetVringBase(*m.As<VringState>());
    case Request::kGetVringBase:
      return GetVringBase(*m.As<VringState>(), reply);
    case Request::kSetVringKick:
    case Request::kSetVringCall:
    case Request::kSetVringErr:
      return SetVringFd(m);
    case Request::kSetVringEnable:
      return SetVringEnable(*m.As<VringState>());
    case Request::kGetConfig:
      return GetConfig(m, reply);
    case Request::kSetConfig:
      return SetConfig(m);
    default:
      return Fail("not supported by this back-end");
  }
}

Status Session::SetFeatures(uint64_t features) {
  if ((features & ~offered_features_) != 0) {
    return Fail("features {:#x} were not offered", features & ~offered_features_);
  }
  Deactivate();
  features_ = features;
  features_set_ = true;
  // "If VHOST_USER_F_PROTOCOL_FEATURES has not been negotiated, the ring starts directly in
  // the enabled state."
  if ((features & kFProtocolFeatures) == 0) {
    for (Ring& ring : rings_) ring.enabled = true;
  }
  return TryActivate();
}

Status Session::SetMemTable(Message& m) {
  MemoryTableHeader h;
  std::memcpy(&h, m.payload.data(), sizeof(h));
  std::vector<MemoryRegion> regions(h.nregions);
  std::memcpy(regions.data(), m.payload.data() + sizeof(h), h.nregions * sizeof(MemoryRegion));
  auto table = MemoryTable::Map(regions, m.fds);
  if (!table) return tl::unexpected(table.error());
  // The device holds the old memory until it is reset.
  Deactivate();
  table_ = std::make_unique<MemoryTable>(std::move(*table));
  return TryActivate();
}

Result<uint16_t> Session::RingIndex(uint64_t index) const {
  if (index >= rings_.size()) {
    return Fail("ring {} does not exist ({} has {})", index, device_.name(), rings_.size());
  }
  return static_cast<uint16_t>(index);
}

Status Session::SetVringNum(const VringState& state) {
  const uint16_t i = VIREO_TRY(RingIndex(state.index));
  // 2.7: a power of two, at most the device's maximum (which Queue::Activate checks again).
  const uint32_t num = state.num;
  if (num == 0 || num > device_.max_queue_size() || (num & (num - 1)) != 0) {
    return Fail("ring {} size {}: expected a power of two up to {}", i, num,
                device_.max_queue_size());
  }
  if (active_) return Fail("ring {} is running", i);
  rings_[i].size = static_cast<uint16_t>(num);
  return {};
}

Status Session::SetVringAddr(const VringAddr& addr) {
  const uint16_t i = VIREO_TRY(RingIndex(addr.index));
  if (!table_) return Fail("ring {} addresses before SET_MEM_TABLE", i);
  // Checked here so the front-end hears of a bad address at once; translated again at
  // activation, against whatever table is current then.
  if (!table_->Translate(addr.desc_user_addr, 1) || !table_->Translate(addr.avail_user_addr, 1) ||
      !table_->Translate(addr.used_user_addr, 1)) {
    return Fail(
        "ring {} addresses (desc {:#x}, avail {:#x}, used {:#x}) lie outside the memory table", i,
        addr.desc_user_addr, addr.avail_user_addr, addr.used_user_addr);
  }
  if (active_) return Fail("ring {} is running", i);
  rings_[i].addr = addr;
  return {};
}

Status Session::SetVringBase(const VringState& state) {
  const uint16_t i = VIREO_TRY(RingIndex(state.index));
  // Split rings: the next available index, a free-running u16.
  if (state.num > 0xffff) return Fail("ring {} base {} does not fit a split ring", i, state.num);
  if (active_) return Fail("ring {} is running", i);
  rings_[i].base = static_cast<uint16_t>(state.num);
  return {};
}

Status Session::GetVringBase(const VringState& state, Reply& reply) {
  const uint16_t i = VIREO_TRY(RingIndex(state.index));
  // "Stops the vring and returns the current descriptor index": the device stops with it, and
  // the other rings' indices are kept for when it starts again.
  Deactivate();
  Ring& ring = rings_[i];
  Unwatch(i);
  ring.started = false;
  ring.kick.reset();
  interrupt_.SetFd(i, -1);
  ring.call.reset();
  reply.Set(VringState{i, ring.base});
  return {};
}

Status Session::SetVringFd(Message& m) {
  const auto request = static_cast<Request>(m.header.request);
  const uint64_t value = *m.As<uint64_t>();
  const uint16_t i = VIREO_TRY(RingIndex(value & kVringIndexMask));
  UniqueFd fd;
  if (!m.fds.empty()) {
    fd = std::move(m.fds[0]);
    if (Status ok = CheckEventFd(fd.get()); !ok) return Wrap(fmt::format("ring {}", i), ok.error());
  }
  Ring& ring = rings_[i];
  switch (request) {
    case Request::kSetVringKick:
      // A new kick fd (re)starts the ring; a running device switches to it at once.
      Unwatch(i);
      ring.kick = std::move(fd);
      ring.started = true;
      if (active_) {
        Watch(i);
        device_.QueueNotify(i);  // a kick may have gone to the old fd
        return {};
      }
      return TryActivate();
    case Request::kSetVringCall:
      interrupt_.SetFd(i, fd.get());
      ring.call = std::move(fd);  // the old fd closes after the switch
      return {};
    default:
      ring.err = std::move(fd);
      return {};
  }
}

Status Session::SetVringEnable(const VringState& state) {
  const uint16_t i = VIREO_TRY(RingIndex(state.index));
  if (state.num > 1) return Fail("ring {}: enable value {}", i, state.num);
  const bool enable = state.num == 1;
  if (rings_[i].enabled == enable) return {};
  if (!enable) Deactivate();
  rings_[i].enabled = enable;
  return TryActivate();
}

Status Session::GetConfig(const Message& m, Reply& reply) {
  ConfigHeader h;
  std::memcpy(&h, m.payload.data(), sizeof(h));
  // The reply echoes the header with the config bytes filled in: the whole range when it lies
  // inside the device's config space, else byte by byte with zeros past its end.
  std::memcpy(reply.bytes.data(), &h, sizeof(h));
  std::span<uint8_t> out(reply.bytes.data() + sizeof(h), h.size);
  if (!device_.ReadConfig(h.offset, out)) {
    for (uint32_t j = 0; j < h.size; ++j) {
      if (!device_.ReadConfig(uint64_t{h.offset} + j, out.subspan(j, 1))) out[j] = 0;
    }
  }
  reply.size = sizeof(h) + h.size;
  reply.send = true;
  return {};
}

Status Session::SetConfig(const Message& m) {
  ConfigHeader h;
  std::memcpy(&h, m.payload.data(), sizeof(h));
  if (!device_.WriteConfig(h.offset, m.body().subspan(sizeof(h), h.size))) {
    return Fail("{} refuses a {}-byte config write at offset {}", device_.name(), h.size, h.offset);
  }
  return {};
}

void Session::ResetState() {
  Deactivate();
  for (uint16_t i = 0; i < rings_.size(); ++i) {
    Unwatch(i);
    interrupt_.SetFd(i, -1);
    rings_[i] = Ring{};
  }
  table_.reset();
  features_set_ = false;
  features_ = 0;
  owner_ = false;
}

Status Session::TryActivate() {
  if (active_ || !features_set_ || !table_) return {};
  for (const Ring& ring : rings_) {
    if (!ring.started || !ring.enabled || !ring.addr || ring.size == 0) return {};
  }
  const GuestMemory& memory = table_->memory();
  const bool event_idx = (features_ & virtio::kFEventIdx) != 0;
  const bool indirect = (features_ & virtio::kFIndirectDesc) != 0;
  auto failed = [&](const Error& error) -> Status {
    counters_.activation_failures++;
    for (virtio::Queue& queue : queues_) queue.Reset();
    return Wrap(fmt::format("activating {}", device_.name()), error);
  };
  for (uint16_t i = 0; i < rings_.size(); ++i) {
    const Ring& ring = rings_[i];
    const auto desc = table_->Translate(ring.addr->desc_user_addr, 1);
    const auto avail = table_->Translate(ring.addr->avail_user_addr, 1);
    const auto used = table_->Translate(ring.addr->used_user_addr, 1);
    if (!desc || !avail || !used) {
      return failed(Error{fmt::format("ring {} lies outside the memory table", i)});
    }
    // The used index the device resumes from is the ring's own: requests completed before a
    // stop are already there.
    const auto used_idx = memory.ReadObj<uint16_t>(*used + 2);
    if (!used_idx) return failed(Error{fmt::format("ring {}'s used ring is outside memory", i)});
    virtio::QueueState state{
        .size = ring.size,
        .desc_table = *desc,
        .avail_ring = *avail,
        .used_ring = *used,
        .ready = true,
        .next_avail = ring.base,
        .next_used = *used_idx,
        .signalled_used = *used_idx,
        .event_idx = event_idx,
        .indirect_desc = indirect,
    };
    // Validates size, alignment and that every ring lies in one region.
    if (Status ok = queues_[i].Restore(memory, state); !ok) {
      return failed(Error{fmt::format("ring {}: {}", i, ok.error().message)});
    }
  }
  if (Status ok = virtio::ActivateWithFeatures(device_, memory, queues_, features_, interrupt_);
      !ok) {
    return failed(ok.error());
  }
  active_ = true;
  counters_.activations++;
  for (uint16_t i = 0; i < rings_.size(); ++i) {
    Watch(i);
    // Buffers the driver made available while no back-end ran (before a reconnect, or before
    // the ring started) were kicked to nobody.
    device_.QueueNotify(i);
  }
  return {};
}

void Session::Deactivate() {
  if (!active_) return;
  for (uint16_t i = 0; i < rings_.size(); ++i) Unwatch(i);
  device_.Reset();
  for (uint16_t i = 0; i < rings_.size(); ++i) {
    rings_[i].base = queues_[i].next_avail();
    queues_[i].Reset();
  }
  active_ = false;
}

void Session::Watch(uint16_t index) {
  Ring& ring = rings_[index];
  if (ring.watched || !ring.kick) return;
  const int fd = ring.kick.get();
  Status added = loop_.Add(fd, EPOLLIN, [this, index, fd](uint32_t) { OnKick(index, fd); });
  if (!added) {
    Log(LogLevel::kError, "vhost-user: ring {}: watching the kick fd: {}", index,
        added.error().message);
    return;
  }
  ring.watched = true;
}

void Session::Unwatch(uint16_t index) {
  Ring& ring = rings_[index];
  if (!ring.watched) return;
  // Waits for a running OnKick, so the fd may be closed afterwards.
  (void)loop_.Remove(ring.kick.get());
  ring.watched = false;
}

void Session::OnKick(uint16_t index, int fd) {
  uint64_t count;
  // Non-blocking eventfd: EAGAIN when another wake-up already drained it.
  (void)!::read(fd, &count, sizeof(count));
  kicks_.fetch_add(1, std::memory_order_relaxed);
  device_.QueueNotifyOnIoThread(index);  // This is the device's I/O thread: no second wake-up.
}

}  // namespace vireo::vhost_user
