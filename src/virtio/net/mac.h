// Ethernet MAC addresses for virtio-net's configuration (virtio 1.2, 5.1.4 "mac"): parsing
// the user's "52:54:00:12:34:56", formatting, and a random locally administered unicast
// address for when none is given (IEEE 802: bit 1 of the first octet set = locally
// administered, bit 0 clear = unicast).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace vireo::virtio {

using MacAddress = std::array<uint8_t, 6>;

// Six two-digit hex octets separated by ':' (or '-'). Errors name the expected form.
Result<MacAddress> ParseMac(std::string_view text);
std::string FormatMac(const MacAddress& mac);
// A random unicast, locally administered address (from getrandom; falls back to the clock).
MacAddress RandomMac();

}  // namespace vireo::virtio
