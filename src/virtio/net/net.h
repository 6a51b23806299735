// virtio network device (virtio 1.2, 5.1 "Network Device"): device ID 1, one queue pair
// (receiveq1 = 0, transmitq1 = 1), backed by a Linux tap (tap.h).
//
// Features (5.1.3): MAC (config mac: NetOptions::mac, or a random locally administered
// one), STATUS (link up; SetLinkUp() changes it and sends a config change), MRG_RXBUF, and,
// unless NetOptions::offloads is off, CSUM/HOST_TSO4/HOST_TSO6/HOST_ECN (the tap takes GSO
// frames as they are) and GUEST_CSUM/GUEST_TSO4/GUEST_TSO6/GUEST_ECN (mirrored to the tap
// with TUNSETOFFLOAD at activation); HOST_UFO/GUEST_UFO only when the kernel accepts
// TUN_F_UFO. MTU when NetOptions::mtu is set (the tap's MTU is set to match). No CTRL_VQ
// yet: no control queue, so no promiscuous/MAC filtering, VLAN filtering, announce or MQ.
// VERSION_1 is always negotiated (the transports require it), so every packet carries the
// 12-byte struct virtio_net_hdr_v1 with num_buffers (5.1.6).
//
// Transmit (5.1.6.2): on a notify, each chain's readable buffers (header + frame) are
// written to the tap with one writev over guest memory spans; the header passes straight
// through and the kernel checks it (a refused frame counts as tx_dropped). A chain with
// writable buffers, less than a header, more than kMaxPacketBytes or too many buffers is
// completed with length 0 and counted. At most kTxBurst chains per round. If the tap would
// block, the chain waits and EPOLLOUT is watched.
//
// Receive (5.1.6.3, 5.1.6.4): the tap fd is watched for EPOLLIN, and frames are read with
// readv straight into the guest's rx buffers: chains are popped ahead and held, their
// writable buffers form one iovec array, and a preallocated 64 KiB bounce buffer sits at
// its end. Without MRG_RXBUF one chain takes one frame, and a frame larger than the chain
// is dropped (counted); the driver SHOULD post 1526- or 65562-byte buffers. With MRG_RXBUF
// chains are held until they cover a maximum-size frame or the ring is empty, the frame
// fills as many as it needs, num_buffers says how many, and the unused chains stay held
// for the next frame. The tap cannot report the next frame's size (no FIONREAD), so when
// the ring ran dry and a frame spills into the bounce buffer, that frame waits there until
// the guest posts more buffers, then is copied into them. No rx buffers: EPOLLIN is
// dropped from the tap's interest and frames wait in the kernel's tap queue (the kernel
// drops, and counts as the tap's TX drops, once txqueuelen frames wait); the next rx notify
// resumes reading. At most kRxBurst frames per round.
//
// Threading (like Blk): queues and the tap are used on the event loop thread only.
// QueueNotify may be called from any thread: it signals notify_fd(q), which the loop watches
// and which the VMM may register with KVM as the queue's ioeventfd. Activate registers the
// notify fds and the tap fd; Reset removes them and must not be called from this device's
// own handlers. The EventLoop must outlive the device. Hot path: no allocation, no
// exceptions; all buffers are allocated at construction.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "virtio/device.h"
#include "virtio/net/mac.h"
#include "virtio/net/net_state.h"
#include "virtio/net/tap.h"
#include "virtio/queue.h"

namespace vireo::virtio {

inline constexpr uint32_t kDeviceIdNet = 1;  // 5 "Device Types"

// Feature bits (5.1.3).
inline constexpr uint64_t kNetFCsum = 1ull << 0;
inline constexpr uint64_t kNetFGuestCsum = 1ull << 1;
inline constexpr uint64_t kNetFCtrlGuestOffloads = 1ull << 2;
inline constexpr uint64_t kNetFMtu = 1ull << 3;
inline constexpr uint64_t kNetFMac = 1ull << 5;
inline constexpr uint64_t kNetFGuestTso4 = 1ull << 7;
inline constexpr uint64_t kNetFGuestTso6 = 1ull << 8;
inline constexpr uint64_t kNetFGuestEcn = 1ull << 9;
inline constexpr uint64_t kNetFGuestUfo = 1ull << 10;
inline constexpr uint64_t kNetFHostTso4 = 1ull << 11;
inline constexpr uint64_t kNetFHostTso6 = 1ull << 12;
inline constexpr uint64_t kNetFHostEcn = 1ull << 13;
inline constexpr uint64_t kNetFHostUfo = 1ull << 14;
inline constexpr uint64_t kNetFMrgRxbuf = 1ull << 15;
inline constexpr uint64_t kNetFStatus = 1ull << 16;
inline constexpr uint64_t kNetFCtrlVq = 1ull << 17;

inline constexpr uint16_t kNetSLinkUp = 1;  // 5.1.4 status

// struct virtio_net_config (5.1.4) up to mtu (no SPEED_DUPLEX, RSS or hash fields).
struct NetConfig {
  uint8_t mac[6];
  uint16_t status;
  uint16_t max_virtqueue_pairs;
  uint16_t mtu;
};
static_assert(sizeof(NetConfig) == 12);

// struct virtio_net_hdr_v1 (5.1.6).
struct VirtioNetHdr {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(VirtioNetHdr) == Tap::kVnetHdrSize);

struct NetOptions {
  std::string tap_name;           // empty: the kernel picks vireoN
  std::optional<MacAddress> mac;  // empty: random, locally administered
  uint16_t mtu = 0;               // 0: no VIRTIO_NET_F_MTU, the tap's MTU is left alone
  bool offloads = true;           // checksum/TSO/ECN/UFO features
  bool mergeable_rx = true;       // VIRTIO_NET_F_MRG_RXBUF
};

struct NetCounters {
  uint64_t rx_packets = 0;
  uint64_t rx_bytes = 0;       // frame bytes, without the virtio-net header
  uint64_t rx_dropped = 0;     // frames read from the tap that did not fit the posted buffers
  uint64_t rx_errors = 0;      // tap read errors
  uint64_t rx_bad_chains = 0;  // bad or read-only rx chains, or smaller than the header
  uint64_t rx_waits = 0;       // times reading stopped for lack of rx buffers
  uint64_t tx_packets = 0;
  uint64_t tx_bytes = 0;               // frame bytes, without the virtio-net header
  uint64_t tx_dropped = 0;             // frames the tap refused (bad header, ...)
  uint64_t tx_bad_chains = 0;          // malformed tx chains, completed with length 0
  uint64_t tx_blocked = 0;             // times the tap would block a write
  uint64_t dropped_notifications = 0;  // for no such queue
  uint64_t announcements = 0;          // RARP frames sent for the guest after a restore
};

class Net : public VirtioDevice {
 public:
  static constexpr uint16_t kRxQueue = 0;
  static constexpr uint16_t kTxQueue = 1;
  static constexpr uint16_t kQueueSize = 256;
  // Largest Ethernet frame (64 KiB GSO plus Ethernet and VLAN headers), and with its header.
  static constexpr size_t kMaxFrameBytes = 65536 + 18;
  static constexpr size_t kMaxPacketBytes = Tap::kVnetHdrSize + kMaxFrameBytes;
  static constexpr size_t kMaxIov = 1024;          // UIO_MAXIOV
  static constexpr size_t kMaxIovPerRxChain = 64;  // further rx buffers of a chain are unused
  static constexpr uint32_t kRxBurst = 64;         // frames per round
  static constexpr uint32_t kTxBurst = 256;        // chains per round

  // Opens the tap named in options (see Tap::Open for the errors).
  static Result<std::unique_ptr<Net>> Create(NetOptions options, EventLoop& loop);
  // Uses an already opened tap.
  static Result<std::unique_ptr<Net>> Create(Tap tap, NetOptions options, EventLoop& loop);
  ~Net() override;  // Reset()s
  Net(const Net&) = delete;
  Net& operator=(const Net&) = delete;

  std::string_view name() const override { return "net"; }
  uint32_t device_type() const override { return kDeviceIdNet; }
  uint64_t device_features() const override { return features_; }
  uint16_t num_queues() const override { return 2; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  bool ReadConfig(uint64_t offset, std::span<uint8_t> data) override;
  bool WriteConfig(uint64_t offset, std::span<const uint8_t> data) override;
  Status Activate(ActivateContext context) override;
  void Reset() override;
  void QueueNotify(uint16_t index) override;
  bool needs_reset() const override;

  // The eventfd QueueNotify(queue) signals (hand it to KVM as an ioeventfd); -1 for no queue.
  int notify_fd(uint16_t queue) const override;
  const std::string& tap_name() const { return tap_.name(); }
  const MacAddress& mac() const { return mac_; }
  // Sets VIRTIO_NET_S_LINK_UP and, when it changed on an active device, signals a config
  // change (5.1.4.2).
  void SetLinkUp(bool up);
  NetCounters counters() const;
  // The TUN_F_* offloads the tap has now (mirroring the negotiated GUEST_* features).
  unsigned tap_offloads() const;

  // ---- Snapshot (net_persist.cc); only while the event loop is parked (a paused VM). ----
  // The device's state. rx and tx are the transport's saved queues: rx chains popped ahead
  // and held unfilled, and a tx chain waiting for the tap, go back to the driver's side
  // (next_avail rewound to the first of them), so the restored device pops them again; a
  // frame half received into held chains travels whole in rx_pending.
  NetSavedState SaveState(QueueState& rx, QueueState& tx) const;
  // Before the transport's restore activates the device: checks `state` against this
  // device (the MAC) and its bounds, and queues rx_pending for delivery first. On
  // activation the device announces the guest's MAC on the tap (a RARP broadcast, as QEMU
  // does for guests without VIRTIO_NET_F_GUEST_ANNOUNCE), so switches learn where it is now.
  Status RestoreState(const NetSavedState& state);

 private:
  struct HeldChain {  // an rx chain popped ahead, its buffers at rx_iov_[iov_begin...]
    uint16_t head;
    uint16_t avail_index;  // the avail ring index it was popped from (for snapshots)
    uint16_t iov_begin;
    uint16_t iov_count;
    uint32_t capacity;
  };

  Net(Tap tap, NetOptions options, EventLoop& loop, std::array<EventFd, 2> notify);
  // Loop-thread handlers.
  void OnNotify(uint16_t queue);
  void OnTap(uint32_t events);
  // With mu_ held, on the loop thread.
  void MarkBroken();
  // Watches the tap for EPOLLIN while rx can take frames, EPOLLOUT while tx is blocked.
  void UpdateInterest();
  void MaybeSignal(uint16_t queue);
  // Transmit (net_tx.cc).
  void ProcessTx();
  bool ValidTxChain();
  bool WriteTxChain();  // false: the tap would block; the chain waits
  // Receive (net_rx.cc).
  void ProcessRx();
  // Pops rx chains until they hold `target` bytes, the ring is empty or the limits hit.
  void HoldChains(size_t target);
  void HoldChain();
  bool HoldLimitReached() const;
  enum class ReadResult { kAgain, kEmpty };
  ReadResult ReadFrame();
  bool FinishPending();
  void CompleteFrame(size_t len);
  void DropHeld();
  // After a restore (net_persist.cc): the RARP announcement, written to the tap.
  void Announce();

  Tap tap_;
  const NetOptions options_;
  EventLoop& loop_;
  const std::array<EventFd, 2> notify_;
  const MacAddress mac_;
  const uint64_t features_;

  mutable std::mutex mu_;
  // Guarded by mu_. Set between Activate and Reset.
  NetConfig config_{};
  bool active_ = false;
  bool registered_ = false;
  const GuestMemory* memory_ = nullptr;
  Queue* rx_ = nullptr;
  Queue* tx_ = nullptr;
  QueueInterrupt* interrupt_ = nullptr;
  bool mergeable_ = false;
  bool needs_reset_ = false;
  std::array<bool, 2> used_pending_{};
  uint32_t interest_ = 0;    // the tap fd's epoll events
  bool tap_failed_ = false;  // the tap reported EPOLLERR/EPOLLHUP: no longer watched
  // Receive state.
  DescriptorChain rx_chain_;
  std::vector<HeldChain> held_;  // kQueueSize slots; held_count_ in use
  std::vector<iovec> rx_iov_;    // kMaxIov slots: held chains' buffers, then the bounce buffer
  std::vector<uint8_t> bounce_;  // kMaxPacketBytes
  size_t held_count_ = 0;
  size_t held_iov_ = 0;
  size_t held_capacity_ = 0;
  size_t pending_len_ = 0;    // a frame waiting for buffers: its length, 0 when none
  size_t pending_split_ = 0;  // its bytes in held chains; the rest are in bounce_
  bool rx_waiting_ = false;   // reading stopped until the next rx notify
  // Transmit state.
  DescriptorChain tx_chain_;
  std::vector<iovec> tx_iov_;  // kMaxIov slots
  size_t tx_iov_count_ = 0;
  bool tx_blocked_ = false;  // tx_chain_ waits for the tap to take it
  bool announce_ = false;    // restored: announce the MAC at activation
  NetCounters counters_;
};

}  // namespace vireo::virtio
