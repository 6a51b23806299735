// virtio-net: features, configuration space, activation and the event wiring. The data
// paths are in net_tx.cc and net_rx.cc.
#include "virtio/net/net.h"

#include <algorithm>
#include <utility>

#include "base/bytes.h"
#include "base/log.h"

namespace vireo::virtio {
namespace {

uint64_t Features(const Tap& tap, const NetOptions& options) {
  uint64_t features = kNetFMac | kNetFStatus;  // no kNetFCtrlVq yet
  if (options.mergeable_rx) features |= kNetFMrgRxbuf;
  if (options.mtu != 0) features |= kNetFMtu;
  if (!options.offloads) return features;
  // Transmit offloads: the tap takes checksum-partial and GSO frames as they are (5.1.6.2).
  features |= kNetFCsum | kNetFHostTso4 | kNetFHostTso6 | kNetFHostEcn;
  // Receive offloads: only what TUNSETOFFLOAD can mirror (5.1.6.3).
  const unsigned tun = tap.supported_offloads();
  if (!(tun & TUN_F_CSUM)) return features;
  features |= kNetFGuestCsum;
  if (tun & TUN_F_TSO4) features |= kNetFGuestTso4;
  if (tun & TUN_F_TSO6) features |= kNetFGuestTso6;
  if (tun & TUN_F_TSO_ECN) features |= kNetFGuestEcn;
  if (tun & TUN_F_UFO) features |= kNetFGuestUfo | kNetFHostUfo;
  return features;
}

// The TUN_F_* flags mirroring the negotiated GUEST_* features (5.1.3.1 dependencies: the
// GSO features need GUEST_CSUM, ECN needs TSO4 or TSO6).
unsigned TunOffloads(uint64_t features, unsigned supported) {
  if (!(features & kNetFGuestCsum)) return 0;
  unsigned flags = TUN_F_CSUM;
  if (features & kNetFGuestTso4) flags |= TUN_F_TSO4;
  if (features & kNetFGuestTso6) flags |= TUN_F_TSO6;
  if ((features & kNetFGuestEcn) && (flags & (TUN_F_TSO4 | TUN_F_TSO6))) flags |= TUN_F_TSO_ECN;
  if (features & kNetFGuestUfo) flags |= TUN_F_UFO;
  return flags & supported;
}

}  // namespace

Result<std::unique_ptr<Net>> Net::Create(NetOptions options, EventLoop& loop) {
  Tap tap = VIREO_TRY(Tap::Open(options.tap_name));
  return Create(std::move(tap), std::move(options), loop);
}

Result<std::unique_ptr<Net>> Net::Create(Tap tap, NetOptions options, EventLoop& loop) {
  if (options.mtu != 0) {
    // 5.1.4.1: mtu between 68 and 65535; a frame must still fit kMaxFrameBytes.
    if (options.mtu < 68) return Fail("virtio-net: MTU {} is below 68", options.mtu);
    if (auto set = tap.SetMtu(options.mtu); !set) return Wrap("virtio-net", set.error());
  }
  std::array<EventFd, 2> notify;
  for (auto& fd : notify) {
    auto created = EventFd::Create();
    if (!created) return Wrap("virtio-net: creating a notify eventfd", created.error());
    fd = std::move(*created);
  }
  return std::unique_ptr<Net>(new Net(std::move(tap), std::move(options), loop, std::move(notify)));
}

Net::Net(Tap tap, NetOptions options, EventLoop& loop, std::array<EventFd, 2> notify)
    : tap_(std::move(tap)),
      options_(std::move(options)),
      loop_(loop),
      notify_(std::move(notify)),
      mac_(options_.mac.value_or(RandomMac())),
      features_(Features(tap_, options_)),
      rx_chain_(kQueueSize + kMaxIndirectEntries),
      held_(kQueueSize),
      rx_iov_(kMaxIov),
      bounce_(kMaxPacketBytes),
      tx_chain_(kQueueSize + kMaxIndirectEntries),
      tx_iov_(kMaxIov) {
  std::copy(mac_.begin(), mac_.end(), config_.mac);
  config_.status = kNetSLinkUp;
  config_.max_virtqueue_pairs = 1;
  config_.mtu = options_.mtu;
}

Net::~Net() { Net::Reset(); }  // not virtual dispatch: this class's Reset

bool Net::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  return ReadConfigBytes(AsBytes(config_), offset, data);
}

bool Net::WriteConfig(uint64_t, std::span<const uint8_t>) {
  return false;  // 5.1.4.2: the driver MUST NOT write to the configuration (no legacy mac)
}

int Net::notify_fd(uint16_t queue) const {
  return queue < notify_.size() ? notify_[queue].fd() : -1;
}

Status Net::Activate(ActivateContext context) {
  if (context.queues.size() != 2) {
    return Fail("virtio-net: expected 2 queues, got {}", context.queues.size());
  }
  {
    std::lock_guard lock(mu_);
    if (active_ || registered_) return Fail("virtio-net: already active");
    const uint64_t features = context.features & features_;
    if (auto set = tap_.SetOffloads(TunOffloads(features, tap_.supported_offloads())); !set) {
      return Wrap("virtio-net: mirroring the guest's offloads", set.error());
    }
    memory_ = &context.memory;
    rx_ = &context.queues[kRxQueue];
    tx_ = &context.queues[kTxQueue];
    interrupt_ = &context.interrupt;
    mergeable_ = (features & kNetFMrgRxbuf) != 0;
    needs_reset_ = false;
    used_pending_ = {};
    rx_waiting_ = false;
    tap_failed_ = false;
    interest_ = EPOLLIN;
    active_ = true;
  }
  // Without mu_: an event may run a handler at once, which takes mu_.
  Status added =
      loop_.Add(notify_[kRxQueue].fd(), EPOLLIN, [this](uint32_t) { OnNotify(kRxQueue); });
  if (added) {
    added = loop_.Add(notify_[kTxQueue].fd(), EPOLLIN, [this](uint32_t) { OnNotify(kTxQueue); });
    if (added) {
      added = loop_.Add(tap_.fd(), EPOLLIN, [this](uint32_t events) { OnTap(events); });
      if (!added) (void)loop_.Remove(notify_[kTxQueue].fd());
    }
    if (!added) (void)loop_.Remove(notify_[kRxQueue].fd());
  }
  std::lock_guard lock(mu_);
  if (!added) {
    active_ = false;
    memory_ = nullptr;
    rx_ = tx_ = nullptr;
    interrupt_ = nullptr;
    return Wrap("virtio-net: watching its fds", added.error());
  }
  registered_ = true;
  if (std::exchange(announce_, false)) Announce();
  // Buffers made available before DRIVER_OK are used now.
  notify_[kRxQueue].Signal();
  notify_[kTxQueue].Signal();
  return {};
}

void Net::Reset() {
  bool registered;
  {
    std::lock_guard lock(mu_);
    active_ = false;  // a handler that still runs does nothing more
    registered = registered_;
    registered_ = false;
  }
  // Without mu_: Remove waits for a running handler, which takes mu_.
  if (registered) {
    for (int fd : {notify_[kRxQueue].fd(), notify_[kTxQueue].fd(), tap_.fd()}) {
      if (auto removed = loop_.Remove(fd); !removed) {
        Log(LogLevel::kError, "virtio-net: {}", removed.error().message);
      }
    }
  }
  std::lock_guard lock(mu_);
  // Held rx chains and a waiting tx chain belong to rings the driver is resetting.
  if (pending_len_ > 0) counters_.rx_dropped++;
  DropHeld();
  tx_blocked_ = false;
  tx_iov_count_ = 0;
  memory_ = nullptr;
  rx_ = tx_ = nullptr;
  interrupt_ = nullptr;
  needs_reset_ = false;
  used_pending_ = {};
  rx_waiting_ = false;
  interest_ = 0;
  for (const auto& fd : notify_) fd.Drain();
  // Frames queued from now on carry no offloads the next driver may not negotiate.
  (void)tap_.SetOffloads(0);
}

bool Net::needs_reset() const {
  std::lock_guard lock(mu_);
  return needs_reset_;
}

NetCounters Net::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

unsigned Net::tap_offloads() const {
  std::lock_guard lock(mu_);
  return tap_.offloads();
}

void Net::SetLinkUp(bool up) {
  std::lock_guard lock(mu_);
  const uint16_t status = up ? kNetSLinkUp : 0;
  if (config_.status == status) return;
  config_.status = status;
  if (active_) interrupt_->SignalConfigChange();  // 5.1.4.2
}

void Net::QueueNotify(uint16_t index) {
  if (index >= notify_.size()) {
    std::lock_guard lock(mu_);
    counters_.dropped_notifications++;
    return;
  }
  notify_[index].Signal();  // any thread; the loop processes the queue
}

void Net::OnNotify(uint16_t queue) {
  notify_[queue].Drain();
  std::lock_guard lock(mu_);
  if (!active_) return;
  if (queue == kRxQueue) {
    rx_waiting_ = false;  // the driver may have posted buffers
    ProcessRx();
  } else {
    ProcessTx();
  }
  MaybeSignal(kRxQueue);
  MaybeSignal(kTxQueue);
  UpdateInterest();
}

void Net::OnTap(uint32_t events) {
  std::lock_guard lock(mu_);
  if (!active_) return;
  if (events & EPOLLOUT) ProcessTx();
  if (events & EPOLLIN) ProcessRx();
  if ((events & (EPOLLERR | EPOLLHUP)) && !(events & (EPOLLIN | EPOLLOUT))) {
    // A detached tap; nothing to read or write. Stop watching it rather than spin.
    Log(LogLevel::kError, "virtio-net: tap {} reports an error; no more traffic", tap_.name());
    counters_.rx_errors++;
    tap_failed_ = true;
  }
  MaybeSignal(kRxQueue);
  MaybeSignal(kTxQueue);
  UpdateInterest();
}

void Net::UpdateInterest() {
  const bool rx = rx_ != nullptr && rx_->ready() && !rx_waiting_ && !needs_reset_;
  const bool tx = tx_blocked_ && !needs_reset_;
  const uint32_t events =
      tap_failed_ ? 0u : (rx ? uint32_t{EPOLLIN} : 0u) | (tx ? uint32_t{EPOLLOUT} : 0u);
  if (events == interest_) return;
  // EPOLLERR and EPOLLHUP are always reported; with tap_failed_ we stop listening for good.
  if (auto modified = loop_.Modify(tap_.fd(), events | (tap_failed_ ? uint32_t{EPOLLET} : 0u));
      !modified) {
    Log(LogLevel::kError, "virtio-net: {}", modified.error().message);
    return;
  }
  interest_ = events;
}

void Net::MaybeSignal(uint16_t queue) {
  Queue* q = queue == kRxQueue ? rx_ : tx_;
  if (used_pending_[queue] && q->NeedsNotification(*memory_)) interrupt_->SignalUsed(queue);
  used_pending_[queue] = false;
}

void Net::MarkBroken() {
  if (needs_reset_) return;
  needs_reset_ = true;
  interrupt_->SignalConfigChange();  // 2.1.2
}

}  // namespace vireo::virtio
