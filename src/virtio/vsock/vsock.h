// virtio socket device (virtio 1.2, 5.10 "Socket Device"): device ID 19, queues rx 0,
// tx 1, event 2 (5.10.2), config { le64 guest_cid } (5.10.4), stream sockets only
// (VIRTIO_VSOCK_F_STREAM). The host side uses Unix domain sockets (host_socket.h):
// a host application connects to options.uds_path and writes "CONNECT <port>\n"; a guest
// connecting to host port P reaches "<uds_path>_P".
//
// Every transmitted packet is checked (packet.h): a short header or a wrong CID is dropped,
// a bad length, type or op is answered with RST; all are counted. Flow control follows
// 5.10.6.3.1: the device never sends more than the guest's credit, advertises
// Connection::kBufAlloc per connection, and treats a guest overrunning it as an error (RST).
// Bounds: options.max_connections live connections, kMaxPendingRst queued RSTs, a fixed
// buffer each way per connection, and a cap on chains handled per notification.
//
// Threading: all queue and socket work runs on the EventLoop thread. QueueNotify may be
// called from any thread; it signals notify_fd(q), which the loop watches (and which the
// VMM may hand to KVM as an ioeventfd). Activate registers the listening socket; host
// connections wait in its backlog until then. Reset (device reset, driver unload) closes
// every connection; it must not be called from one of this device's own handlers. The
// EventLoop must outlive the device. The transport event (TRANSPORT_RESET, 5.10.6.6) is sent
// once by a device restored from a snapshot (RestoreState), in the first event buffer the
// driver posts: host connections are not carried, and the guest must drop its own.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <span>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "virtio/device.h"
#include "virtio/queue.h"
#include "virtio/vsock/connection.h"
#include "virtio/vsock/host_socket.h"
#include "virtio/vsock/packet.h"
#include "virtio/vsock/vsock_state.h"

namespace vireo::virtio {

class ChainReader;

inline constexpr uint32_t kDeviceIdVsock = 19;  // 5 "Device Types"
inline constexpr uint64_t kVsockFStream = 1ull << 0;

struct VsockConfig {
  uint64_t guest_cid;
};
static_assert(sizeof(VsockConfig) == 8);

struct VsockCounters {
  uint64_t tx_packets = 0;  // valid packets from the guest
  uint64_t rx_packets = 0;  // packets to the guest
  uint64_t tx_bytes = 0;    // payload from the guest, accepted
  uint64_t rx_bytes = 0;    // payload to the guest
  uint64_t bad_chains = 0;
  uint64_t short_headers = 0;
  uint64_t wrong_cid = 0;
  uint64_t bad_length = 0;
  uint64_t bad_type = 0;
  uint64_t unknown_op = 0;
  uint64_t unexpected_op = 0;    // an op that does not fit the connection's state
  uint64_t credit_overruns = 0;  // the guest sent beyond our buf_alloc
  uint64_t rst_sent = 0;
  uint64_t rst_dropped = 0;          // kMaxPendingRst were already queued
  uint64_t table_full = 0;           // connections refused by max_connections
  uint64_t host_connect_failed = 0;  // nobody listened at <uds>_P
  uint64_t host_accepted = 0;
  uint64_t bad_connect_lines = 0;
  uint64_t host_errors = 0;            // read/write errors on host sockets
  uint64_t dropped_notifications = 0;  // for no such queue
  uint64_t transport_resets = 0;       // TRANSPORT_RESET events given to the guest
};

class Vsock : public VirtioDevice {
 public:
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;
  static constexpr uint16_t kEventQueue = 2;
  static constexpr uint16_t kNumQueues = 3;
  static constexpr uint16_t kQueueSize = 256;
  static constexpr size_t kMaxPendingRst = 1024;
  static constexpr int kMaxAcceptsPerEvent = 32;

  // Checks the options and creates the listening socket at options.uds_path.
  static Result<std::unique_ptr<Vsock>> Create(vsock::VsockOptions options, EventLoop& loop);
  ~Vsock() override;  // Reset()s, closes and unlinks the listening socket
  Vsock(const Vsock&) = delete;
  Vsock& operator=(const Vsock&) = delete;

  std::string_view name() const override { return "vsock"; }
  uint32_t device_type() const override { return kDeviceIdVsock; }
  uint64_t device_features() const override { return kVsockFStream; }
  uint16_t num_queues() const override { return kNumQueues; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  bool ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  bool WriteConfig(uint64_t offset, std::span<const uint8_t> data) override;
  Status Activate(ActivateContext context) override;
  void Reset() override;
  void QueueNotify(uint16_t index) override;
  bool needs_reset() const override;

  // The eventfd that QueueNotify(q) signals (q < kNumQueues), or -1.
  int notify_fd(uint16_t q) const override { return q < kNumQueues ? notify_[q].fd() : -1; }
  const vsock::VsockOptions& options() const { return options_; }
  VsockCounters counters() const;
  size_t connection_count() const;

  // ---- Snapshot (vsock_persist.cc). ----
  VsockSavedState SaveState() const;
  // Before the transport's restore activates the device: checks the guest CID and arms the
  // TRANSPORT_RESET event (5.10.6.6), sent as soon as an event buffer is available.
  Status RestoreState(const VsockSavedState& state);

 private:
  using Connection = vsock::Connection;

  Vsock(vsock::VsockOptions options, EventLoop& loop, UniqueFd listener,
        std::vector<EventFd> notify);

  // Loop-thread handlers; each takes mu_ and returns at once when inactive.
  void OnNotify(uint16_t q);
  void OnListener();
  void OnHostEvent(uint64_t id, uint32_t events);

  // Below: mu_ held, on the loop thread.
  void ProcessTx();
  void HandleTxPacket(const vsock::Header& header, ChainReader& payload);
  void HandleGuestRequest(const vsock::Header& header);
  void HandleGuestShutdown(Connection& conn, uint32_t flags);
  void HandleGuestData(Connection& conn, ChainReader& payload, uint32_t len);
  void ProcessRx();
  uint32_t WriteConnPacket(Connection& conn, vsock::RxKind kind, const DescriptorChain& chain);
  void Broken();
  void MaybeSignal();
  // Sends the armed TRANSPORT_RESET if the event queue has a buffer (vsock_persist.cc).
  void SendTransportReset();

  // Host sockets (vsock_host.cc).
  void ReadConnectLine(Connection& conn);
  void ReadHost(Connection& conn, uint32_t events);
  void FlushToHost(Connection& conn);
  void AfterFlush(Connection& conn);
  void UpdateWatch(Connection& conn);
  Connection* AddConnection(UniqueFd fd);
  Connection* Find(uint32_t local_port, uint32_t peer_port);
  void SetPorts(Connection& conn, uint32_t local_port, uint32_t peer_port);
  void MarkReady(Connection& conn);
  void QueueRst(uint32_t local_port, uint32_t peer_port);
  // Closes the host side and queues an RST for the guest when it knew the connection. The
  // object moves to graveyard_ (emptied when a handler ends), so references stay valid;
  // every helper does nothing for a removed connection.
  void RemoveConnection(Connection& conn, bool send_rst);
  uint32_t AllocateHostPort(uint32_t guest_port);

  const vsock::VsockOptions options_;
  EventLoop& loop_;
  const UniqueFd listener_;
  const std::vector<EventFd> notify_;  // one per queue
  const VsockConfig config_;
  std::pair<dev_t, ino_t> socket_inode_{};  // the socket file it bound at uds_path

  mutable std::mutex mu_;
  // Guarded by mu_. Set between Activate and Reset.
  bool active_ = false;
  bool registered_ = false;  // listener and notify fds are in the loop
  const GuestMemory* memory_ = nullptr;
  Queue* rx_ = nullptr;
  Queue* tx_ = nullptr;
  Queue* event_ = nullptr;
  QueueInterrupt* interrupt_ = nullptr;
  bool needs_reset_ = false;
  bool reset_event_ = false;  // restored: a TRANSPORT_RESET is owed to the guest
  bool rx_used_ = false;
  bool tx_used_ = false;
  DescriptorChain chain_;
  std::vector<uint8_t> bounce_;  // kMaxPayload: guest payload on its way to a host socket
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
  std::unordered_map<uint64_t, uint64_t> by_ports_;  // (local << 32 | peer) -> id
  std::deque<uint64_t> ready_;                       // ids with something for the guest
  std::deque<vsock::Header> pending_rst_;            // at most kMaxPendingRst
  std::vector<std::unique_ptr<Connection>> graveyard_;
  uint64_t next_id_ = 1;
  uint32_t next_host_port_ = 1u << 30;
  VsockCounters counters_;
};

}  // namespace vireo::virtio
