#include "boot/boot_data.h"

#include <algorithm>

#include "arch/x86/layout.h"

namespace vireo::boot {

std::string SizeText(uint64_t bytes) {
  if (bytes >= (1ull << 20) && bytes % (1ull << 20) == 0) return fmt::format("{} MiB", bytes >> 20);
  if (bytes >= (1ull << 20))
    return fmt::format("{:.1f} MiB", static_cast<double>(bytes) / (1 << 20));
  if (bytes >= (1ull << 10) && bytes % (1ull << 10) == 0) return fmt::format("{} KiB", bytes >> 10);
  return fmt::format("{} bytes", bytes);
}

std::string FirstBytesText(std::span<const uint8_t> file) {
  std::string text;
  size_t shown = std::min<size_t>(file.size(), 8);
  for (size_t i = 0; i < shown; ++i) {
    if (i != 0) text += ' ';
    text += fmt::format("{:02x}", file[i]);
  }
  if (file.size() > shown) text += " ...";
  if (text.empty()) text = "none: the file is empty";
  return text;
}

Status WriteCmdline(const GuestMemory& memory, std::string_view cmdline, uint64_t limit) {
  // Never past the window the layout reserves, whatever the kernel claims to accept.
  limit = std::min<uint64_t>(limit, x86::kCmdlineMax - 1);
  if (cmdline.size() > limit) {
    return Fail("kernel command line is {} bytes; the limit is {} bytes; shorten it",
                cmdline.size(), limit);
  }
  if (size_t nul = cmdline.find('\0'); nul != std::string_view::npos) {
    return Fail("kernel command line has a NUL byte at offset {}; remove it", nul);
  }
  auto span = memory.Span(x86::kCmdline, cmdline.size() + 1);
  if (!span) return Fail("guest RAM does not cover the command line area at {:#x}", x86::kCmdline);
  std::copy(cmdline.begin(), cmdline.end(), span->begin());
  (*span)[cmdline.size()] = 0;
  return {};
}

Result<GuestAddress> LowRamEnd(const GuestMemory& memory) {
  for (const GuestMemory::Region& region : memory.regions()) {
    if (region.range.base <= x86::kHighMemory && x86::kHighMemory < region.range.end()) {
      return std::min(region.range.end(), k4GiB);
    }
  }
  return Fail(
      "guest RAM does not reach 1 MiB, where kernels are loaded; give the VM more --memory");
}

Result<PlacedInitrd> PlaceInitrd(const GuestMemory& memory, std::span<const uint8_t> initrd,
                                 GuestAddress kernel_end, GuestAddress limit) {
  if (initrd.empty()) return Fail("the initrd file is empty; give a real initrd or drop --initrd");
  GuestAddress floor = AlignUp(kernel_end, kPageSize);
  if (initrd.size() > limit || AlignDown(limit - initrd.size(), kPageSize) < floor) {
    return Fail(
        "initrd ({}) does not fit between the kernel's end at {:#x} and {:#x}, the highest "
        "address it may use; give the VM more --memory or use a smaller initrd",
        SizeText(initrd.size()), floor, limit);
  }
  GuestAddress addr = AlignDown(limit - initrd.size(), kPageSize);
  VIREO_TRY_STATUS(memory.WriteOrFail(addr, initrd, "initrd"));
  return PlacedInitrd{addr, initrd.size()};
}

}  // namespace vireo::boot
