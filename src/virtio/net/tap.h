// A Linux tap device as virtio-net's host backend (Documentation/networking/tuntap.rst).
//
// Open() attaches to (or creates) the tap NAME through /dev/net/tun with IFF_TAP |
// IFF_NO_PI | IFF_VNET_HDR, single queue (no IFF_MULTI_QUEUE), and sets the vnet header size
// to 12 bytes (TUNSETVNETHDRSZ), so every frame read or written is preceded by a struct
// virtio_net_hdr_v1 (virtio 1.2, 5.1.6) including num_buffers, which the kernel skips: the
// guest's header passes straight through on transmit, and on receive the device fills in
// num_buffers itself. The fd is non-blocking and close-on-exec.
//
// Offloads: TUNSETOFFLOAD says what the kernel may hand us (checksum-partial and GSO frames),
// i.e. what the guest accepts (the GUEST_* features). Open() probes which TUN_F_* flags this
// kernel accepts; SetOffloads() applies the negotiated subset. Writes of GSO frames are
// always accepted by the kernel.
//
// Errors name the fix: no /dev/net/tun, no CAP_NET_ADMIN, a name in use or of another kind.
#pragma once

#include <linux/if_tun.h>

#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vireo::virtio {

class Tap {
 public:
  // sizeof(struct virtio_net_hdr_v1): the header with num_buffers (5.1.6).
  static constexpr int kVnetHdrSize = 12;
  // The TUN_F_* flags Vireo may ask for.
  static constexpr unsigned kKnownOffloads =
      TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO;

  // name: the interface name (at most 15 bytes), or empty to let the kernel pick "vireo%d".
  static Result<Tap> Open(std::string_view name);

  Tap(Tap&&) noexcept = default;
  Tap& operator=(Tap&&) noexcept = default;

  int fd() const { return fd_.get(); }
  // The interface name the kernel gave (the requested one, or the picked one).
  const std::string& name() const { return name_; }
  // TUN_F_* flags this kernel accepted when probed (a subset of kKnownOffloads).
  unsigned supported_offloads() const { return supported_offloads_; }
  unsigned offloads() const { return offloads_; }
  // TUNSETOFFLOAD: `flags` must be within supported_offloads(); TSO/ECN/UFO need TUN_F_CSUM.
  Status SetOffloads(unsigned flags);
  // SIOCSIFMTU on the interface (in this thread's network namespace).
  Status SetMtu(int mtu);

 private:
  Tap(UniqueFd fd, std::string name, unsigned supported)
      : fd_(std::move(fd)), name_(std::move(name)), supported_offloads_(supported) {}

  UniqueFd fd_;
  std::string name_;
  unsigned supported_offloads_ = 0;
  unsigned offloads_ = 0;
};

}  // namespace vireo::virtio
