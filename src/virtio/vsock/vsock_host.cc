// The host-facing half of the vsock device: the listening Unix socket, the
// "CONNECT <port>\n" handshake, and moving bytes between host sockets and the
// per-connection buffers. Everything here runs on the loop thread with mu_ held.
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "base/log.h"
#include "virtio/vsock/vsock.h"

namespace vireo::virtio {

using vsock::ConnState;

namespace {

bool WouldBlock() { return errno == EAGAIN || errno == EWOULDBLOCK; }

uint64_t PortsKey(uint32_t local_port, uint32_t peer_port) {
  return (uint64_t{local_port} << 32) | peer_port;
}

}  // namespace

void Vsock::OnListener() {
  std::lock_guard lock(mu_);
  if (!active_) return;
  // Bounded per event; the listener stays readable while more wait.
  for (int i = 0; i < kMaxAcceptsPerEvent; ++i) {
    UniqueFd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (!WouldBlock() && errno != EINTR && errno != ECONNABORTED) {
        counters_.host_errors++;
        Log(LogLevel::kWarn, "virtio-vsock: accept: {}", std::strerror(errno));
      }
      break;
    }
    if (conns_.size() >= options_.max_connections) {
      counters_.table_full++;
      continue;  // closes fd
    }
    counters_.host_accepted++;
    UpdateWatch(*AddConnection(std::move(fd)));  // waits for the CONNECT line
  }
  graveyard_.clear();
}

void Vsock::OnHostEvent(uint64_t id, uint32_t events) {
  std::lock_guard lock(mu_);
  if (!active_) return;
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  Connection& conn = *it->second;
  if (conn.state == ConnState::kConnectLine) {
    ReadConnectLine(conn);
  } else if ((events & EPOLLERR) != 0) {
    counters_.host_errors++;
    RemoveConnection(conn, true);
  } else {
    const uint32_t watched = conn.watched;
    if ((events & EPOLLOUT) != 0) FlushToHost(conn);
    // A hang-up is seen by reading: the remaining bytes, then EOF.
    if ((events & (EPOLLIN | EPOLLHUP)) != 0 && (watched & EPOLLIN) != 0) ReadHost(conn, events);
    UpdateWatch(conn);
  }
  ProcessRx();
  MaybeSignal();
  graveyard_.clear();
}

void Vsock::ReadConnectLine(Connection& conn) {
  // Byte by byte, so bytes after the '\n' stay in the socket for the guest. Bounded by the
  // line's size; a longer line is malformed.
  for (size_t i = 0; i <= Connection::kMaxConnectLine; ++i) {
    char c = 0;
    ssize_t n = ::recv(conn.fd.get(), &c, 1, 0);
    if (n < 0 && WouldBlock()) return;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return RemoveConnection(conn, false);  // the host gave up
    if (c == '\n') {
      auto port = vsock::ParseConnectLine(std::string_view(conn.line.data(), conn.line_len));
      if (!port) break;
      SetPorts(conn, AllocateHostPort(*port), *port);
      conn.state = ConnState::kConnecting;
      conn.pending_request = true;
      UpdateWatch(conn);  // nothing more from the host until the guest answers
      return MarkReady(conn);
    }
    if (conn.line_len == conn.line.size()) break;
    conn.line[conn.line_len++] = c;
  }
  counters_.bad_connect_lines++;
  RemoveConnection(conn, false);
}

void Vsock::ReadHost(Connection& conn, uint32_t events) {
  // Bounded: the ring's free space lies in at most two runs; a few more absorb EINTR.
  for (int round = 0; round < 4 && !conn.removed; ++round) {
    std::span<uint8_t> space = conn.to_guest.Writable();
    if (space.empty()) break;
    ssize_t n = ::recv(conn.fd.get(), space.data(), space.size(), 0);
    if (n < 0) {
      if (WouldBlock()) break;
      if (errno == EINTR) continue;
      counters_.host_errors++;
      return RemoveConnection(conn, true);
    }
    if (n == 0) {  // EOF: the host sends no more; after a hang-up it takes no more either
      conn.host_eof = true;
      conn.pending_shutdown |= vsock::kShutdownSend;
      if ((events & EPOLLHUP) != 0) conn.pending_shutdown |= vsock::kShutdownRcv;
      break;
    }
    conn.to_guest.Commit(static_cast<size_t>(n));
  }
  MarkReady(conn);
}

void Vsock::FlushToHost(Connection& conn) {
  // Bounded: the ring's bytes lie in at most two runs; a few more absorb EINTR.
  for (int round = 0; round < 4 && !conn.removed && !conn.to_host.empty(); ++round) {
    std::span<const uint8_t> data = conn.to_host.Readable();
    ssize_t n = ::send(conn.fd.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (WouldBlock()) break;
      if (errno == EINTR) continue;
      counters_.host_errors++;
      return RemoveConnection(conn, true);
    }
    conn.to_host.Consume(static_cast<size_t>(n));
    conn.Forwarded(static_cast<size_t>(n));
  }
  AfterFlush(conn);
  MarkReady(conn);  // perhaps a credit update
}

void Vsock::AfterFlush(Connection& conn) {
  if (conn.removed || !conn.to_host.empty()) return;
  if (conn.closing) return RemoveConnection(conn, true);  // 5.10.6.3: RST ends the close
  if (conn.guest_shut_send && !conn.host_write_shut) {
    ::shutdown(conn.fd.get(), SHUT_WR);
    conn.host_write_shut = true;
  }
}

void Vsock::UpdateWatch(Connection& conn) {
  if (conn.removed) return;
  uint32_t want = 0;
  if (conn.state == ConnState::kConnectLine) {
    want = EPOLLIN;
  } else if (conn.state == ConnState::kEstablished) {
    if (!conn.host_eof && !conn.guest_shut_rcv && conn.to_guest.space() > 0) want |= EPOLLIN;
    if (!conn.to_host.empty()) want |= EPOLLOUT;
  }
  if (want == conn.watched) return;
  // Unwatched fds are removed from the loop: a hung-up socket would report EPOLLHUP even
  // with no events asked for.
  Status status;
  if (want == 0) {
    status = loop_.Remove(conn.fd.get());
    conn.watched = 0;
  } else if (conn.watched == 0) {
    const uint64_t id = conn.id;
    status =
        loop_.Add(conn.fd.get(), want, [this, id](uint32_t events) { OnHostEvent(id, events); });
    if (status) conn.watched = want;
  } else {
    status = loop_.Modify(conn.fd.get(), want);
    if (status) conn.watched = want;
  }
  if (!status) {
    counters_.host_errors++;
    Log(LogLevel::kWarn, "virtio-vsock: {}", status.error().message);
    RemoveConnection(conn, true);
  }
}

vsock::Connection* Vsock::AddConnection(UniqueFd fd) {
  const uint64_t id = next_id_++;
  auto conn = std::make_unique<Connection>(id, std::move(fd));
  Connection* raw = conn.get();
  conns_.emplace(id, std::move(conn));
  return raw;
}

vsock::Connection* Vsock::Find(uint32_t local_port, uint32_t peer_port) {
  auto key = by_ports_.find(PortsKey(local_port, peer_port));
  if (key == by_ports_.end()) return nullptr;
  auto it = conns_.find(key->second);
  return it == conns_.end() ? nullptr : it->second.get();
}

void Vsock::SetPorts(Connection& conn, uint32_t local_port, uint32_t peer_port) {
  conn.local_port = local_port;
  conn.peer_port = peer_port;
  by_ports_[PortsKey(local_port, peer_port)] = conn.id;
}

void Vsock::MarkReady(Connection& conn) {
  if (conn.removed || conn.in_ready || conn.NextRx() == vsock::RxKind::kNone) return;
  ready_.push_back(conn.id);  // at most one entry per connection
  conn.in_ready = true;
}

void Vsock::QueueRst(uint32_t local_port, uint32_t peer_port) {
  if (pending_rst_.size() >= kMaxPendingRst) {
    counters_.rst_dropped++;
    return;
  }
  pending_rst_.push_back(
      vsock::MakeHostHeader(options_.guest_cid, local_port, peer_port, vsock::Op::kRst));
}

void Vsock::RemoveConnection(Connection& conn, bool send_rst) {
  if (conn.removed) return;
  conn.removed = true;
  const bool guest_knows = conn.state != ConnState::kConnectLine && !conn.pending_request;
  if (send_rst && guest_knows) QueueRst(conn.local_port, conn.peer_port);
  if (conn.watched != 0) (void)loop_.Remove(conn.fd.get());  // loop thread: never waits
  conn.watched = 0;
  conn.fd.reset();
  if (conn.state != ConnState::kConnectLine) {
    by_ports_.erase(PortsKey(conn.local_port, conn.peer_port));
  }
  if (conn.in_ready) std::erase(ready_, conn.id);
  auto it = conns_.find(conn.id);
  graveyard_.push_back(std::move(it->second));  // `conn` stays valid until the handler ends
  conns_.erase(it);
}

uint32_t Vsock::AllocateHostPort(uint32_t guest_port) {
  // Host ports for host-initiated connections count up from 2^30, as Firecracker's do.
  // Bounded: among max_connections + 1 candidates one is free.
  uint32_t port = next_host_port_;
  for (size_t i = 0; i <= options_.max_connections; ++i) {
    port = next_host_port_;
    next_host_port_ = next_host_port_ == UINT32_MAX ? 1u << 30 : next_host_port_ + 1;
    if (Find(port, guest_port) == nullptr) break;
  }
  return port;
}

}  // namespace vireo::virtio
