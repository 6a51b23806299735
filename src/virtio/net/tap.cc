#include "virtio/net/tap.h"

#include <fcntl.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace vireo::virtio {
namespace {

constexpr const char* kTunPath = "/dev/net/tun";

Result<UniqueFd> OpenTunDevice() {
  UniqueFd fd(::open(kTunPath, O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (fd) return fd;
  const int err = errno;
  if (err == ENOENT || err == ENODEV || err == ENXIO) {
    return Fail(
        "{}: {}: load the tun module (modprobe tun), or in a container pass the device "
        "through (e.g. --device /dev/net/tun)",
        kTunPath, strerror(err));
  }
  if (err == EACCES || err == EPERM) {
    return Fail(
        "{}: {}: run Vireo as root or with CAP_NET_ADMIN, or give this user access to "
        "the device",
        kTunPath, strerror(err));
  }
  return Fail("{}: {}", kTunPath, strerror(err));
}

Error SetIffError(std::string_view name, int err) {
  switch (err) {
    case EPERM:
    case EACCES:
      return Error{fmt::format(
          "tap '{}': {}: creating or attaching a tap needs CAP_NET_ADMIN; run as root, or "
          "create a persistent tap for this user first: ip tuntap add dev {} mode tap vnet_hdr "
          "user $(id -un)",
          name, strerror(err), name.empty() ? "vireo0" : name)};
    case EBUSY:
      return Error{
          fmt::format("tap '{}': {}: the tap is in use by another process; pick "
                      "another name or stop that process",
                      name, strerror(err))};
    case EINVAL:
      return Error{fmt::format(
          "tap '{}': {}: an interface of that name exists but is not a single-queue tap (a tun, "
          "a multi-queue tap or another kind of device); pick another name or delete it (ip "
          "link del {})",
          name, strerror(err), name)};
    default:
      return Error{fmt::format("tap '{}': TUNSETIFF: {}", name, strerror(err))};
  }
}

// Which TUN_F_* flags the kernel accepts: CSUM alone, then each other flag with CSUM.
unsigned ProbeOffloads(int fd) {
  if (::ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(TUN_F_CSUM)) < 0) return 0;
  unsigned supported = TUN_F_CSUM;
  for (unsigned flag : {TUN_F_TSO4, TUN_F_TSO6, TUN_F_UFO}) {
    if (::ioctl(fd, TUNSETOFFLOAD, static_cast<unsigned long>(TUN_F_CSUM | flag)) == 0) {
      supported |= flag;
    }
  }
  if ((supported & TUN_F_TSO4) &&
      ::ioctl(fd, TUNSETOFFLOAD,
              static_cast<unsigned long>(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN)) == 0) {
    supported |= TUN_F_TSO_ECN;
  }
  (void)::ioctl(fd, TUNSETOFFLOAD, 0ul);  // nothing until the guest negotiates
  return supported;
}

}  // namespace

Result<Tap> Tap::Open(std::string_view name) {
  if (name.size() >= IFNAMSIZ) {
    return Fail("tap '{}': interface names are at most {} bytes", name, IFNAMSIZ - 1);
  }
  UniqueFd fd = VIREO_TRY(OpenTunDevice());

  unsigned int features = 0;
  if (::ioctl(fd.get(), TUNGETFEATURES, &features) == 0 && !(features & IFF_VNET_HDR)) {
    return Fail("tap '{}': this kernel's tun driver lacks IFF_VNET_HDR; virtio-net needs it", name);
  }
  ifreq ifr{};
  const std::string_view requested = name.empty() ? std::string_view("vireo%d") : name;
  std::memcpy(ifr.ifr_name, requested.data(), requested.size());
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;  // not IFF_MULTI_QUEUE
  if (::ioctl(fd.get(), TUNSETIFF, &ifr) < 0) return tl::unexpected(SetIffError(name, errno));
  std::string actual(ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ));

  int hdr_size = kVnetHdrSize;
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &hdr_size) < 0) {
    return Fail("tap '{}': TUNSETVNETHDRSZ {}: {}", actual, hdr_size, strerror(errno));
  }
  const unsigned supported = ProbeOffloads(fd.get());
  return Tap(std::move(fd), std::move(actual), supported);
}

Status Tap::SetOffloads(unsigned flags) {
  if (flags & ~supported_offloads_) {
    return Fail("tap '{}': offloads {:#x} asked for, this kernel accepts only {:#x}", name_, flags,
                supported_offloads_);
  }
  if (flags != 0 && !(flags & TUN_F_CSUM)) {
    return Fail("tap '{}': offloads {:#x} need TUN_F_CSUM", name_, flags);
  }
  if (::ioctl(fd_.get(), TUNSETOFFLOAD, static_cast<unsigned long>(flags)) < 0) {
    return Fail("tap '{}': TUNSETOFFLOAD {:#x}: {}", name_, flags, strerror(errno));
  }
  offloads_ = flags;
  return {};
}

Status Tap::SetMtu(int mtu) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) return Fail("tap '{}': socket for SIOCSIFMTU: {}", name_, strerror(errno));
  ifreq ifr{};
  std::memcpy(ifr.ifr_name, name_.data(), name_.size());
  ifr.ifr_mtu = mtu;
  if (::ioctl(sock.get(), SIOCSIFMTU, &ifr) < 0) {
    const int err = errno;
    return Fail("tap '{}': setting MTU {}: {}{}", name_, mtu, strerror(err),
                err == EPERM ? " (needs CAP_NET_ADMIN; or set it beforehand with ip link set "
                               "dev NAME mtu N and leave --mtu out)"
                             : "");
  }
  return {};
}

}  // namespace vireo::virtio
