// One vhost-user front-end connection driving one VirtioDevice: the vhost-user "transport",
// the third beside virtio-mmio and virtio-pci. The device is the same object `vireo run` puts
// behind those transports; only the way its queues, memory and interrupts are set up differs.
//
//   virtio-pci / mmio                      vhost-user (this file)
//   guest writes queue registers           SET_VRING_NUM / ADDR / BASE (addresses translated
//                                          from the front-end's virtual addresses)
//   guest RAM (GuestMemory::Create)        SET_MEM_TABLE regions mapped from fds (MemoryTable)
//   DRIVER_OK                              every ring started (SET_VRING_KICK) and enabled
//   queue notify (ioeventfd)               the ring's kick eventfd, watched on the EventLoop
//   MSI-X / irqfd                          the ring's call eventfd (CallInterrupt)
//   status = 0 (reset)                     GET_VRING_BASE (ring stop), RESET_OWNER, disconnect
//
// The device is activated (ActivateWithFeatures, shared with the other transports) once the
// features are set, the memory table is mapped and every one of its queues is started, enabled
// and fully described. Any change to that (a ring stopped or disabled, a new memory table, new
// features) resets the device first, saving each ring's next available index as its base, and
// activates it again when the conditions hold once more. Rings are enabled on start unless
// VHOST_USER_F_PROTOCOL_FEATURES was negotiated, in which case SET_VRING_ENABLE enables them.
//
// Errors. A message whose shape is wrong (payload size for its type, number of fds, an index
// in a GET request) is a protocol violation: Handle returns kDisconnect and the server closes
// the connection. A well-formed request Vireo refuses (an address outside the memory table, a
// ring index out of range, a feature not offered, an fd that is not an eventfd, an unsupported
// request) changes nothing, is counted and logged, and gets a failure reply when the front-end
// asked for one (REPLY_ACK). Neither can make the back-end touch memory outside the table:
// every ring is validated by Queue::Activate and every access goes through GuestMemory.
//
// Threading: Handle runs on the server's thread; device work and kick handlers run on the
// EventLoop's thread, exactly as with the VMM's transports (whose Activate/Reset come from vCPU
// threads). The device and the loop must outlive the session.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "vhost_user/call_interrupt.h"
#include "vhost_user/connection.h"
#include "vhost_user/memory_table.h"
#include "virtio/device.h"
#include "virtio/queue.h"

namespace vireo::vhost_user {

struct SessionCounters {
  uint64_t messages = 0;
  uint64_t refused = 0;      // well-formed requests refused (failure reply or logged)
  uint64_t violations = 0;   // malformed messages (the connection is closed)
  uint64_t activations = 0;  // device activations
  uint64_t activation_failures = 0;
  uint64_t kicks = 0;  // kick eventfd wake-ups passed to the device
};

class Session {
 public:
  enum class Outcome { kContinue, kDisconnect };

  // The features offered by any session for `device`: its own bits plus VERSION_1,
  // INDIRECT_DESC, EVENT_IDX and VHOST_USER_F_PROTOCOL_FEATURES.
  static uint64_t OfferedFeatures(const virtio::VirtioDevice& device);
  // MQ and REPLY_ACK, plus CONFIG for devices with a configuration space the front-end must
  // read from the back-end (blk).
  static uint64_t OfferedProtocolFeatures(const virtio::VirtioDevice& device);

  Session(virtio::VirtioDevice& device, EventLoop& loop);
  ~Session();  // resets the device and stops watching the kick fds
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Handles one message and writes its reply, if any, to `reply_fd`.
  Outcome Handle(Message& message, int reply_fd);

  bool device_active() const { return active_; }
  SessionCounters counters() const {
    SessionCounters counters = counters_;
    counters.kicks = kicks_.load(std::memory_order_relaxed);
    return counters;
  }
  uint64_t call_signals() const { return interrupt_.signals(); }

 private:
  struct Ring {
    uint16_t size = 0;  // SET_VRING_NUM; 0 until set
    uint16_t base = 0;  // the next available index to resume from (SET/GET_VRING_BASE)
    std::optional<VringAddr> addr;
    bool started = false;  // a SET_VRING_KICK arrived since the last stop
    bool enabled = false;
    UniqueFd kick;  // may be empty for a started ring (the front-end said "no fd")
    UniqueFd call;
    UniqueFd err;  // kept, never signalled (docs/vhost-user.md)
    bool watched = false;
  };
  // A reply of a request's own (GET_*); none for the rest.
  struct Reply {
    bool send = false;
    std::array<uint8_t, kMaxPayload> bytes{};
    size_t size = 0;
    template <typename T>
    void Set(const T& value) {
      static_assert(sizeof(T) <= kMaxPayload);
      std::memcpy(bytes.data(), &value, sizeof(T));
      size = sizeof(T);
      send = true;
    }
  };

  Status CheckShape(const Message& message) const;
  Status Dispatch(Message& message, Reply& reply);

  Status SetFeatures(uint64_t features);
  Status SetMemTable(Message& message);
  Status SetVringNum(const VringState& state);
  Status SetVringAddr(const VringAddr& addr);
  Status SetVringBase(const VringState& state);
  Status GetVringBase(const VringState& state, Reply& reply);
  Status SetVringFd(Message& message);
  Status SetVringEnable(const VringState& state);
  Status GetConfig(const Message& message, Reply& reply);
  Status SetConfig(const Message& message);
  void ResetState();

  Result<uint16_t> RingIndex(uint64_t index) const;
  // Activates the device when every ring is ready; a no-op when active or not ready yet.
  Status TryActivate();
  // Resets the device (if active), keeping each ring's next available index as its base.
  void Deactivate();
  void Watch(uint16_t index);
  void Unwatch(uint16_t index);
  void OnKick(uint16_t index, int fd);

  virtio::VirtioDevice& device_;
  EventLoop& loop_;
  const uint64_t offered_features_;
  const uint64_t offered_protocol_features_;
  CallInterrupt interrupt_;

  bool owner_ = false;
  bool features_set_ = false;
  uint64_t features_ = 0;
  uint64_t protocol_features_ = 0;
  std::unique_ptr<MemoryTable> table_;
  std::vector<Ring> rings_;
  std::vector<virtio::Queue> queues_;
  bool active_ = false;
  SessionCounters counters_;
  std::atomic<uint64_t> kicks_{0};
};

}  // namespace vireo::vhost_user
