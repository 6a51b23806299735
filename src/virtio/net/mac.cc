#include "virtio/net/mac.h"

#include <sys/random.h>

#include <chrono>

namespace vireo::virtio {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

Result<MacAddress> ParseMac(std::string_view text) {
  // "xx:xx:xx:xx:xx:xx": 17 characters, a separator after each of the first five octets.
  MacAddress mac{};
  if (text.size() != 17) {
    return Fail("MAC address '{}': expected six hex octets like 52:54:00:12:34:56", text);
  }
  const char separator = text[2];
  for (size_t i = 0; i < mac.size(); ++i) {
    const int hi = HexDigit(text[3 * i]);
    const int lo = HexDigit(text[3 * i + 1]);
    const bool separator_ok = i + 1 == mac.size() || (text[3 * i + 2] == separator &&
                                                      (separator == ':' || separator == '-'));
    if (hi < 0 || lo < 0 || !separator_ok) {
      return Fail("MAC address '{}': expected six hex octets like 52:54:00:12:34:56", text);
    }
    mac[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  if (mac[0] & 1) {
    return Fail(
        "MAC address '{}' is a multicast address (bit 0 of the first octet); a NIC "
        "needs a unicast one, e.g. 52:54:00:12:34:56",
        text);
  }
  return mac;
}

std::string FormatMac(const MacAddress& mac) {
  return fmt::format("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", mac[0], mac[1], mac[2], mac[3],
                     mac[4], mac[5]);
}

MacAddress RandomMac() {
  MacAddress mac{};
  if (::getrandom(mac.data(), mac.size(), GRND_NONBLOCK) != static_cast<ssize_t>(mac.size())) {
    uint64_t seed = static_cast<uint64_t>(
        std::chrono::steady_clock::now().time_since_epoch().count() * 0x9e3779b97f4a7c15ull);
    for (auto& octet : mac) {
      octet = static_cast<uint8_t>(seed >> 56);
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
    }
  }
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfc) | 0x02);  // unicast, locally administered
  return mac;
}

}  // namespace vireo::virtio
