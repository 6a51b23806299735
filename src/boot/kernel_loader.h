// Kernel loaders: put a kernel, its initrd and command line into guest RAM and say
// how the boot vCPU must start. Supported formats, each in its own file:
//   linux_loader.cc  Linux bzImage and ELF vmlinux (Documentation/arch/x86/boot.rst)
//   pvh.cc           PVH ELF kernels (xen/include/public/arch-x86/hvm/start_info.h)
//   multiboot.cc     Multiboot v1 kernels (Multiboot Specification 0.6.96)
// The boot structures go where arch/x86/layout.h says; the kernel goes at or above 1 MiB.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "arch/x86/layout.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace vireo::boot {

enum class BootProtocol { kAuto, kLinux, kPvh, kMultiboot };
std::string_view BootProtocolName(BootProtocol protocol);

// kLong64: the VMM sets up identity paging of the first 4 GiB and a GDT with CS=0x10,
// DS=0x18 (boot.rst "64-bit Boot Protocol"). kProtected32: flat 32-bit protected mode,
// paging off (PVH, multiboot, and the 32-bit Linux entry).
enum class EntryMode { kLong64, kProtected32 };

// Who unpacks a bzImage's compressed kernel: its own decompressor in the guest (the boot
// protocol as written, KASLR included), or Vireo on the host before the boot (gzip, xz and
// zstd payloads; other formats fall back to the guest). The host does in well under a
// second what the software CPU's interpreter takes minutes for.
enum class PayloadDecompression { kGuest, kHost };

struct BootImage {
  std::vector<uint8_t> kernel;
  std::optional<std::vector<uint8_t>> initrd;
  std::string cmdline;
  PayloadDecompression decompression = PayloadDecompression::kGuest;
};

struct MachineInfo {
  uint64_t memory_size = 0;
  std::vector<x86::E820Entry> e820;
  GuestAddress acpi_rsdp = 0;  // 0: no RSDP to pass on
};

struct BootEntry {
  BootProtocol protocol = BootProtocol::kAuto;  // the one actually used
  EntryMode mode = EntryMode::kLong64;
  uint64_t entry_point = 0;
  uint64_t rsi = 0;         // Linux: zero page address
  uint64_t rbx = 0;         // PVH: hvm_start_info address; multiboot: info block address
  uint64_t rax = 0;         // multiboot: 0x2BADB002
  std::string description;  // one line for logs
};

// Detects (kAuto) or checks the format, loads it and writes the boot structures.
// kAuto order: bzImage, ELF with a PVH note, ELF64 vmlinux, multiboot header.
Result<BootEntry> LoadKernel(const GuestMemory& memory, const BootImage& image,
                             BootProtocol protocol, const MachineInfo& machine);

}  // namespace vireo::boot
