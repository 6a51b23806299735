// The guest-facing half of the vsock device: lifecycle, the transmit queue (packets from
// the guest, 5.10.6.3) and the receive queue (packets to the guest). Host sockets are in
// vsock_host.cc.
#include "virtio/vsock/vsock.h"

#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <utility>

#include "base/bytes.h"
#include "base/log.h"
#include "virtio/descriptor_io.h"

namespace vireo::virtio {

using vsock::ConnState;
using vsock::Header;
using vsock::Op;
using vsock::RxKind;
using vsock::Verdict;

Result<std::unique_ptr<Vsock>> Vsock::Create(vsock::VsockOptions options, EventLoop& loop) {
  VIREO_TRY_STATUS(vsock::CheckVsockOptions(options));
  UniqueFd listener = VIREO_TRY(vsock::ListenUnix(options.uds_path));
  struct stat bound {};
  (void)::stat(options.uds_path.c_str(), &bound);
  std::vector<EventFd> notify;
  for (uint16_t q = 0; q < kNumQueues; ++q) {
    auto fd = EventFd::Create();
    if (!fd) return Wrap("virtio-vsock: creating a notify eventfd", fd.error());
    notify.push_back(std::move(*fd));
  }
  auto device = std::unique_ptr<Vsock>(
      new Vsock(std::move(options), loop, std::move(listener), std::move(notify)));
  device->socket_inode_ = {bound.st_dev, bound.st_ino};
  return device;
}

Vsock::Vsock(vsock::VsockOptions options, EventLoop& loop, UniqueFd listener,
             std::vector<EventFd> notify)
    : options_(std::move(options)),
      loop_(loop),
      listener_(std::move(listener)),
      notify_(std::move(notify)),
      config_{options_.guest_cid},
      chain_(kQueueSize + kMaxIndirectEntries),
      bounce_(vsock::kMaxPayload) {}

Vsock::~Vsock() {
  Vsock::Reset();  // no virtual dispatch in a destructor
  // Only our own socket: after a live migration on one host the destination has bound a
  // new one at the same path.
  struct stat now {};
  if (::stat(options_.uds_path.c_str(), &now) == 0 &&
      std::pair(now.st_dev, now.st_ino) == socket_inode_) {
    ::unlink(options_.uds_path.c_str());
  }
}

bool Vsock::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  return ReadConfigBytes(AsBytes(config_), offset, data);  // immutable: no lock
}

bool Vsock::WriteConfig(uint64_t, std::span<const uint8_t>) {
  return false;  // 5.10.4: guest_cid is read-only
}

Status Vsock::Activate(ActivateContext context) {
  if (context.queues.size() != kNumQueues) {
    return Fail("virtio-vsock: expected {} queues, got {}", kNumQueues, context.queues.size());
  }
  {
    std::lock_guard lock(mu_);
    if (active_ || registered_) return Fail("virtio-vsock: already active");
    memory_ = &context.memory;
    rx_ = &context.queues[kRxQueue];
    tx_ = &context.queues[kTxQueue];
    event_ = &context.queues[kEventQueue];
    interrupt_ = &context.interrupt;
    needs_reset_ = false;
    rx_used_ = tx_used_ = false;
    active_ = true;
  }
  // Without mu_, like Reset: notify fds, then the listener (host connections waited in
  // its backlog until now).
  std::vector<int> watched;
  Status added;
  for (uint16_t q = 0; q < kNumQueues && added; ++q) {
    added = loop_.Add(notify_[q].fd(), EPOLLIN, [this, q](uint32_t) { OnNotify(q); });
    if (added) watched.push_back(notify_[q].fd());
  }
  if (added) added = loop_.Add(listener_.get(), EPOLLIN, [this](uint32_t) { OnListener(); });
  if (!added) {
    for (int fd : watched) (void)loop_.Remove(fd);
  }
  std::lock_guard lock(mu_);
  if (!added) {
    active_ = false;
    memory_ = nullptr;
    rx_ = tx_ = event_ = nullptr;
    interrupt_ = nullptr;
    return Wrap("virtio-vsock: watching its fds", added.error());
  }
  registered_ = true;
  notify_[kTxQueue].Signal();  // buffers made available before DRIVER_OK
  notify_[kRxQueue].Signal();
  if (reset_event_) notify_[kEventQueue].Signal();
  return {};
}

void Vsock::Reset() {
  bool registered;
  std::vector<int> conn_fds;
  {
    std::lock_guard lock(mu_);
    active_ = false;  // a handler that runs from now on does nothing
    registered = registered_;
    registered_ = false;
    for (auto& [id, conn] : conns_) {
      if (conn->watched != 0) conn_fds.push_back(conn->fd.get());
      conn->watched = 0;
    }
  }
  // Without mu_: Remove waits for a running handler, which takes mu_.
  auto remove = [this](int fd) {
    if (auto removed = loop_.Remove(fd); !removed) {
      Log(LogLevel::kError, "virtio-vsock: {}", removed.error().message);
    }
  };
  if (registered) {
    for (const EventFd& fd : notify_) remove(fd.fd());
    remove(listener_.get());
  }
  for (int fd : conn_fds) remove(fd);
  std::lock_guard lock(mu_);
  conns_.clear();  // closes every host socket: the host sees EOF
  by_ports_.clear();
  ready_.clear();
  pending_rst_.clear();
  graveyard_.clear();
  memory_ = nullptr;
  rx_ = tx_ = event_ = nullptr;
  interrupt_ = nullptr;
  needs_reset_ = false;
  reset_event_ = false;  // the next driver starts with no connections anyway
  for (const EventFd& fd : notify_) fd.Drain();
}

bool Vsock::needs_reset() const {
  std::lock_guard lock(mu_);
  return needs_reset_;
}

VsockCounters Vsock::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

size_t Vsock::connection_count() const {
  std::lock_guard lock(mu_);
  return conns_.size();
}

void Vsock::QueueNotify(uint16_t index) {
  if (index >= kNumQueues) {
    std::lock_guard lock(mu_);
    counters_.dropped_notifications++;
    return;
  }
  notify_[index].Signal();  // any thread; the loop does the work
}

void Vsock::OnNotify(uint16_t q) {
  notify_[q].Drain();
  std::lock_guard lock(mu_);
  if (!active_) return;
  // The event queue's buffers are kept for a transport reset event (after a restore).
  if (reset_event_) SendTransportReset();
  if (q == kTxQueue) ProcessTx();
  if (q != kEventQueue) ProcessRx();
  MaybeSignal();
  graveyard_.clear();
}

void Vsock::Broken() {
  if (!needs_reset_) {
    needs_reset_ = true;
    interrupt_->SignalConfigChange();  // 2.1.2
  }
}

void Vsock::MaybeSignal() {
  if (rx_used_ && rx_->NeedsNotification(*memory_)) interrupt_->SignalUsed(kRxQueue);
  if (tx_used_ && tx_->NeedsNotification(*memory_)) interrupt_->SignalUsed(kTxQueue);
  rx_used_ = tx_used_ = false;
}

void Vsock::ProcessTx() {
  if (tx_ == nullptr || !tx_->ready()) return;
  // Bounded per notification; when the bound is hit the loop comes back for the rest.
  const uint32_t limit = 4u * tx_->size();
  for (uint32_t i = 0; i < limit; ++i) {
    PopResult result = tx_->Pop(*memory_, chain_);
    if (result == PopResult::kEmpty) return;
    if (result == PopResult::kBroken) return Broken();
    if (result == PopResult::kChain) {
      ChainReader reader(*memory_, chain_);
      Header header = reader.ReadObj<Header>().value_or(Header{});
      Verdict verdict = vsock::CheckTxHeader(header, chain_.readable_len(), options_.guest_cid);
      switch (verdict) {
        case Verdict::kNone:
          HandleTxPacket(header, reader);
          break;
        case Verdict::kShortHeader:
          counters_.short_headers++;
          break;
        case Verdict::kWrongCid:
          counters_.wrong_cid++;
          break;
        case Verdict::kBadLength:
          counters_.bad_length++;
          break;
        case Verdict::kBadType:
          counters_.bad_type++;
          break;
        case Verdict::kUnknownOp:
          counters_.unknown_op++;
          break;
      }
      if (vsock::RepliesWithRst(verdict, header)) {
        Connection* conn = Find(header.dst_port, header.src_port);
        if (conn != nullptr) {
          RemoveConnection(*conn, true);
        } else {
          QueueRst(header.dst_port, header.src_port);
        }
      }
    } else {
      counters_.bad_chains++;
    }
    tx_used_ |= tx_->AddUsed(*memory_, chain_.head(), 0);
  }
  notify_[kTxQueue].Signal();
}

void Vsock::HandleTxPacket(const Header& header, ChainReader& payload) {
  counters_.tx_packets++;
  const Op op = static_cast<Op>(header.op);
  Connection* conn = Find(header.dst_port, header.src_port);
  if (op == Op::kRst) {  // 5.10.6.3: never answered
    if (conn != nullptr) RemoveConnection(*conn, false);
    return;
  }
  if (conn == nullptr) {
    if (op == Op::kRequest) return HandleGuestRequest(header);
    counters_.unexpected_op++;
    return QueueRst(header.dst_port, header.src_port);
  }
  conn->UpdatePeerCredit(header);
  switch (op) {
    case Op::kResponse: {
      if (conn->state != ConnState::kConnecting || conn->pending_request) break;
      conn->state = ConnState::kEstablished;
      std::array<char, Connection::kOkLineMax> line{};
      auto end = fmt::format_to_n(line.data(), line.size(), "OK {}\n", conn->local_port);
      size_t len = static_cast<size_t>(end.out - line.data());
      conn->to_host.Push({reinterpret_cast<const uint8_t*>(line.data()), len});
      conn->to_host_prefix = len;
      FlushToHost(*conn);
      UpdateWatch(*conn);
      MarkReady(*conn);
      return;
    }
    case Op::kShutdown:
      return HandleGuestShutdown(*conn, header.flags);
    case Op::kRw:
      if (conn->state != ConnState::kEstablished || conn->guest_shut_send) break;
      return HandleGuestData(*conn, payload, header.len);
    case Op::kCreditUpdate:
      return MarkReady(*conn);  // more credit may unblock data
    case Op::kCreditRequest:
      conn->pending_credit_update = true;
      return MarkReady(*conn);
    default:  // a second REQUEST for a live connection
      break;
  }
  counters_.unexpected_op++;
  RemoveConnection(*conn, true);
}

void Vsock::HandleGuestRequest(const Header& header) {
  if (conns_.size() >= options_.max_connections) {
    counters_.table_full++;
    return QueueRst(header.dst_port, header.src_port);
  }
  auto fd = vsock::ConnectUnix(vsock::PortSocketPath(options_.uds_path, header.dst_port));
  if (!fd) {
    counters_.host_connect_failed++;
    return QueueRst(header.dst_port, header.src_port);
  }
  Connection* conn = AddConnection(std::move(*fd));
  SetPorts(*conn, header.dst_port, header.src_port);
  conn->state = ConnState::kEstablished;
  conn->UpdatePeerCredit(header);
  conn->pending_response = true;
  UpdateWatch(*conn);
  MarkReady(*conn);
}

void Vsock::HandleGuestShutdown(Connection& conn, uint32_t flags) {
  // 5.10.6.4: RECEIVE: the guest takes no more data; SEND: it sends no more.
  if ((flags & vsock::kShutdownRcv) != 0) {
    conn.guest_shut_rcv = true;
    conn.to_guest.Clear();
  }
  if ((flags & vsock::kShutdownSend) != 0) conn.guest_shut_send = true;
  // Both: the guest closed. Flush what it sent, then answer with RST.
  if (conn.guest_shut_rcv && conn.guest_shut_send) conn.closing = true;
  AfterFlush(conn);
  UpdateWatch(conn);
  MarkReady(conn);
}

void Vsock::HandleGuestData(Connection& conn, ChainReader& payload, uint32_t len) {
  // 5.10.6.3.1: the guest may have at most buf_alloc bytes not yet forwarded.
  if (conn.rx_cnt - conn.fwd_cnt + uint64_t{len} > Connection::kBufAlloc) {
    counters_.credit_overruns++;
    return RemoveConnection(conn, true);
  }
  size_t n = len == 0 ? 0 : payload.Read(std::span(bounce_).first(len));  // <= kMaxPayload
  conn.rx_cnt += static_cast<uint32_t>(n);
  counters_.tx_bytes += n;
  std::span<const uint8_t> data(bounce_.data(), n);
  if (conn.to_host.empty() && !data.empty()) {  // the common case: straight to the host
    ssize_t sent = ::send(conn.fd.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      counters_.host_errors++;
      return RemoveConnection(conn, true);
    }
    size_t done = sent > 0 ? static_cast<size_t>(sent) : 0;
    conn.Forwarded(done);
    data = data.subspan(done);
  }
  conn.to_host.Push(data);  // fits: the check above bounds it by kBufAlloc
  UpdateWatch(conn);
  MarkReady(conn);  // perhaps a credit update
}

void Vsock::ProcessRx() {
  if (rx_ == nullptr || !rx_->ready()) return;
  const uint32_t limit = 4u * rx_->size();
  for (uint32_t i = 0; i < limit; ++i) {
    // Pick the packet first, so that no chain is taken when there is nothing to send.
    Connection* conn = nullptr;
    RxKind kind = RxKind::kNone;
    // Bounded: each round drops one entry of ready_, which holds at most one per connection.
    while (pending_rst_.empty() && !ready_.empty() && conn == nullptr) {
      auto it = conns_.find(ready_.front());
      ready_.pop_front();
      if (it == conns_.end()) continue;
      it->second->in_ready = false;
      kind = it->second->NextRx();
      if (kind != RxKind::kNone) conn = it->second.get();
    }
    if (pending_rst_.empty() && conn == nullptr) return;
    PopResult result = rx_->Pop(*memory_, chain_);
    if (result == PopResult::kEmpty || result == PopResult::kBroken) {
      if (conn != nullptr) {  // back to the head of the line
        ready_.push_front(conn->id);
        conn->in_ready = true;
      }
      if (result == PopResult::kBroken) Broken();
      return;
    }
    uint32_t len = 0;
    if (result == PopResult::kBadChain || chain_.writable_len() < sizeof(Header)) {
      counters_.bad_chains++;
      if (conn != nullptr) MarkReady(*conn);
    } else if (conn == nullptr) {
      ChainWriter writer(*memory_, chain_);
      writer.WriteObj(pending_rst_.front());
      pending_rst_.pop_front();
      counters_.rst_sent++;
      counters_.rx_packets++;
      len = static_cast<uint32_t>(writer.bytes_written());
    } else {
      len = WriteConnPacket(*conn, kind, chain_);
      counters_.rx_packets++;
      MarkReady(*conn);  // to the back of the line if it has more
    }
    rx_used_ |= rx_->AddUsed(*memory_, chain_.head(), len);
  }
  notify_[kRxQueue].Signal();  // the bound was hit: come back for the rest
}

uint32_t Vsock::WriteConnPacket(Connection& conn, RxKind kind, const DescriptorChain& chain) {
  ChainWriter writer(*memory_, chain);
  Header header =
      vsock::MakeHostHeader(options_.guest_cid, conn.local_port, conn.peer_port, Op::kCreditUpdate);
  uint32_t payload = 0;
  if (kind == RxKind::kRw) {
    size_t room = std::min<size_t>(writer.remaining() - sizeof(Header), vsock::kMaxPayload);
    payload =
        static_cast<uint32_t>(std::min<size_t>({room, conn.PeerCredit(), conn.to_guest.size()}));
    if (payload == 0) kind = RxKind::kCreditUpdate;  // a header-only buffer
  }
  switch (kind) {
    case RxKind::kRequest:
      header.op = static_cast<uint16_t>(Op::kRequest);
      conn.pending_request = false;
      break;
    case RxKind::kResponse:
      header.op = static_cast<uint16_t>(Op::kResponse);
      conn.pending_response = false;
      break;
    case RxKind::kRw:
      header.op = static_cast<uint16_t>(Op::kRw);
      break;
    case RxKind::kShutdown:
      header.op = static_cast<uint16_t>(Op::kShutdown);
      header.flags = conn.pending_shutdown;
      conn.pending_shutdown = 0;
      break;
    case RxKind::kCreditUpdate:
    case RxKind::kNone:
      conn.pending_credit_update = false;
      break;
  }
  conn.StampCredit(header);
  header.len = payload;
  writer.WriteObj(header);
  // Bounded: the ring's bytes lie in at most two runs.
  for (int run = 0; run < 2 && payload > 0; ++run) {
    std::span<const uint8_t> bytes = conn.to_guest.Readable();
    size_t n = writer.Write(bytes.first(std::min<size_t>(bytes.size(), payload)));
    if (n == 0) break;
    conn.to_guest.Consume(n);
    conn.tx_cnt += static_cast<uint32_t>(n);
    counters_.rx_bytes += n;
    payload -= static_cast<uint32_t>(n);
  }
  if (kind == RxKind::kRw) UpdateWatch(conn);  // room again: read the host socket
  return static_cast<uint32_t>(writer.bytes_written());
}

}  // namespace vireo::virtio
