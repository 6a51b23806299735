// Test helpers for virtio-net: a private network namespace per test (so taps, addresses
// and sysctls never touch the host's network), interface set-up by ioctl, and an AF_PACKET
// socket on the tap that plays the host side of the wire. Tests only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vireo::virtio::testing {

// Moves the calling thread into a fresh network namespace with IPv6 off (no router or
// neighbour solicitations on new interfaces). Returns why not (for GTEST_SKIP) when
// /dev/net/tun is missing or unusable or the namespace cannot be made.
std::optional<std::string> EnterPrivateNetns();

// Brings `name` up with address `ipv4`/24 (when not empty) and, when non-zero, `mtu`.
Status ConfigureInterface(std::string_view name, std::string_view ipv4, int mtu = 0);

// A raw AF_PACKET socket bound to one interface: Send() transmits a frame out of the
// interface (so the tap's reader gets it), Receive() returns frames the interface received
// (what the tap's writer sent), ignoring the kernel's own outgoing frames.
class PacketSocket {
 public:
  static Result<PacketSocket> Open(std::string_view interface);
  Status Send(std::span<const uint8_t> frame) const;
  // The next received frame whose EtherType is `ethertype` (any when 0), or nullopt.
  std::optional<std::vector<uint8_t>> Receive(uint16_t ethertype,
                                              std::chrono::milliseconds timeout) const;

 private:
  PacketSocket(UniqueFd fd, int ifindex) : fd_(std::move(fd)), ifindex_(ifindex) {}
  UniqueFd fd_;
  int ifindex_ = 0;
};

}  // namespace vireo::virtio::testing
