#include "virtio/net/test_netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace vireo::virtio::testing {
namespace {

ifreq NamedIfreq(std::string_view name) {
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name.data(), std::min(name.size(), size_t{IFNAMSIZ - 1}));
  return ifr;
}

void WriteSysctl(const char* path, const char* value) {
  std::ofstream out(path);
  out << value;
}

}  // namespace

std::optional<std::string> EnterPrivateNetns() {
  UniqueFd tun(::open("/dev/net/tun", O_RDWR | O_CLOEXEC));
  if (!tun)
    return std::string("cannot open /dev/net/tun (") + strerror(errno) +
           "): needs the tun module and access";
  if (::unshare(CLONE_NEWNET) != 0) {
    return std::string("unshare(CLONE_NEWNET) failed (") + strerror(errno) +
           "): needs CAP_SYS_ADMIN for a private network namespace";
  }
  WriteSysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
  WriteSysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
  return std::nullopt;
}

Status ConfigureInterface(std::string_view name, std::string_view ipv4, int mtu) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return Fail("socket: {}", strerror(errno));
  if (!ipv4.empty()) {
    ifreq ifr = NamedIfreq(name);
    auto* addr = reinterpret_cast<sockaddr_in*>(&ifr.ifr_addr);
    addr->sin_family = AF_INET;
    if (::inet_pton(AF_INET, std::string(ipv4).c_str(), &addr->sin_addr) != 1) {
      return Fail("bad address {}", ipv4);
    }
    if (::ioctl(sock.get(), SIOCSIFADDR, &ifr) < 0) return Fail("SIOCSIFADDR: {}", strerror(errno));
    ifr = NamedIfreq(name);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(0xffffff00);
    if (::ioctl(sock.get(), SIOCSIFNETMASK, &ifr) < 0) {
      return Fail("SIOCSIFNETMASK: {}", strerror(errno));
    }
  }
  if (mtu != 0) {
    ifreq ifr = NamedIfreq(name);
    ifr.ifr_mtu = mtu;
    if (::ioctl(sock.get(), SIOCSIFMTU, &ifr) < 0) return Fail("SIOCSIFMTU: {}", strerror(errno));
  }
  ifreq ifr = NamedIfreq(name);
  if (::ioctl(sock.get(), SIOCGIFFLAGS, &ifr) < 0) return Fail("SIOCGIFFLAGS: {}", strerror(errno));
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP);
  if (::ioctl(sock.get(), SIOCSIFFLAGS, &ifr) < 0) return Fail("SIOCSIFFLAGS: {}", strerror(errno));
  return {};
}

Result<PacketSocket> PacketSocket::Open(std::string_view interface) {
  UniqueFd fd(::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL)));
  if (!fd) return Fail("AF_PACKET socket: {}", strerror(errno));
  const int ifindex = static_cast<int>(::if_nametoindex(std::string(interface).c_str()));
  if (ifindex == 0) return Fail("no interface {}", interface);
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = ifindex;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    return Fail("binding AF_PACKET to {}: {}", interface, strerror(errno));
  }
  return PacketSocket(std::move(fd), ifindex);
}

Status PacketSocket::Send(std::span<const uint8_t> frame) const {
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_ifindex = ifindex_;
  addr.sll_halen = ETH_ALEN;
  std::memcpy(addr.sll_addr, frame.data(), ETH_ALEN);
  const ssize_t n = ::sendto(fd_.get(), frame.data(), frame.size(), 0,
                             reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  if (n != static_cast<ssize_t>(frame.size())) return Fail("sendto: {}", strerror(errno));
  return {};
}

std::optional<std::vector<uint8_t>> PacketSocket::Receive(uint16_t ethertype,
                                                          std::chrono::milliseconds timeout) const {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<uint8_t> frame(70000);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    pollfd pfd{fd_.get(), POLLIN, 0};
    if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) continue;
    sockaddr_ll from{};
    socklen_t from_len = sizeof(from);
    const ssize_t n = ::recvfrom(fd_.get(), frame.data(), frame.size(), MSG_DONTWAIT,
                                 reinterpret_cast<sockaddr*>(&from), &from_len);
    if (n < ETH_HLEN || from.sll_pkttype == PACKET_OUTGOING) continue;
    const uint16_t type = static_cast<uint16_t>(frame[12] << 8 | frame[13]);
    if (ethertype != 0 && type != ethertype) continue;
    frame.resize(static_cast<size_t>(n));
    return frame;
  }
}

}  // namespace vireo::virtio::testing
