// Placement shared by every loader: the command line at x86::kCmdline and the initrd
// page-aligned at the top of low RAM, above the kernel.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace vireo::boot {

inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t k4GiB = 1ull << 32;

// `align` is a power of two; AlignUp saturates instead of wrapping to 0.
constexpr uint64_t AlignUp(uint64_t value, uint64_t align) {
  return value > UINT64_MAX - (align - 1) ? UINT64_MAX : (value + align - 1) & ~(align - 1);
}
constexpr uint64_t AlignDown(uint64_t value, uint64_t align) { return value & ~(align - 1); }

// "300 MiB", "12 KiB" or "70000 bytes", for error messages.
std::string SizeText(uint64_t bytes);

// The first bytes of a file as hex ("7f 45 4c 46 ..."), for "unknown format" errors.
std::string FirstBytesText(std::span<const uint8_t> file);

// Writes `cmdline` and a NUL at x86::kCmdline. `limit` is the longest command line the
// kernel accepts, not counting the NUL.
Status WriteCmdline(const GuestMemory& memory, std::string_view cmdline, uint64_t limit);

// The end of the RAM region holding 1 MiB, capped at 4 GiB: where a 32-bit kernel's
// reachable RAM stops.
Result<GuestAddress> LowRamEnd(const GuestMemory& memory);

struct PlacedInitrd {
  GuestAddress addr = 0;
  uint64_t size = 0;
};

// Copies the initrd to the highest page-aligned address with its end at or below
// `limit`, refusing to go below `kernel_end` (the end of everything the kernel loaded
// or reserved).
Result<PlacedInitrd> PlaceInitrd(const GuestMemory& memory, std::span<const uint8_t> initrd,
                                 GuestAddress kernel_end, GuestAddress limit);

}  // namespace vireo::boot
