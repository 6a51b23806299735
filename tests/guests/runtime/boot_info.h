// The three boot protocols' information, normalised into one struct.
#pragma once

#include <stdint.h>

namespace rt {

enum class BootProtocol : uint32_t { kUnknown = 0, kLinux = 1, kPvh = 2, kMultiboot = 3 };

const char* BootProtocolName(BootProtocol p);

struct MemoryRange {
  uint64_t addr;
  uint64_t size;
  uint32_t type;  // e820 types: 1 RAM, 2 reserved, 3 ACPI, 4 NVS
};

struct BootInfo {
  static constexpr int kMaxRanges = 32;
  static constexpr int kMaxCmdline = 1024;

  BootProtocol protocol;
  // Copied out of the loader's memory so later use of low memory (AP trampoline) is safe.
  char cmdline[kMaxCmdline];
  bool cmdline_truncated;
  MemoryRange memory[kMaxRanges];
  int memory_count;
  uint64_t initrd_addr;  // 0 when none
  uint64_t initrd_size;
  uint64_t rsdp_addr;  // from the boot info, else the BIOS-area scan; 0 when not found
  bool rsdp_from_boot_info;
  // Multiboot only: mem_lower / mem_upper in KiB.
  uint32_t mb_mem_lower;
  uint32_t mb_mem_upper;
  bool valid;  // false when the boot info's magic was wrong (message already printed)
};

// Parses the protocol-specific structure at `info` (boot_params, hvm_start_info or
// multiboot_info) into `out`.
void ParseBootInfo(BootProtocol protocol, uint64_t info, uint32_t magic, BootInfo& out);

// Finds "RSD PTR " with a valid checksum on a 16-byte boundary in 0xE0000-0xFFFFF; 0 if absent.
uint64_t ScanForRsdp();

// Finds `key` in the cmdline as a whole word "key=value"; copies value into out. False if absent.
bool CmdlineValue(const BootInfo& info, const char* key, char* out, int out_size);
// The decimal number after "key=" on the cmdline, or `fallback` when absent or not a number.
uint64_t CmdlineNumber(const BootInfo& info, const char* key, uint64_t fallback);

}  // namespace rt
