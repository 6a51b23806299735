// Multiboot v1 (Multiboot Specification version 0.6.96): a header in the kernel's first
// 8 KiB says how to load it (ELF program headers, or the "a.out kludge" address fields),
// and the kernel starts in 32-bit protected mode with %eax = 0x2BADB002 and %ebx
// pointing at the multiboot information block.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "boot/kernel_loader.h"
#include "memory/guest_memory.h"

namespace vireo::boot {
namespace multiboot {

// Spec 3.1.1 "The layout of Multiboot header".
inline constexpr uint32_t kHeaderMagic = 0x1badb002;
inline constexpr size_t kSearchBytes = 8192;
// Spec 3.2 "Machine state": %eax on entry.
inline constexpr uint32_t kBootloaderMagic = 0x2badb002;

// Spec 3.1.2 "The magic fields of Multiboot header": header flags.
inline constexpr uint32_t kFlagPageAlign = 1u << 0;
inline constexpr uint32_t kFlagMemoryInfo = 1u << 1;
inline constexpr uint32_t kFlagVideoMode = 1u << 2;
inline constexpr uint32_t kFlagAoutKludge = 1u << 16;
// Bits 0-15 are requirements: a loader that does not know one must refuse the kernel.
inline constexpr uint32_t kRequiredMask = 0xffff;
inline constexpr uint32_t kKnownRequired = kFlagPageAlign | kFlagMemoryInfo | kFlagVideoMode;

// Spec 3.3 "Boot information format": info flags.
inline constexpr uint32_t kInfoMem = 1u << 0;
inline constexpr uint32_t kInfoCmdline = 1u << 2;
inline constexpr uint32_t kInfoMods = 1u << 3;
inline constexpr uint32_t kInfoMmap = 1u << 6;
inline constexpr uint32_t kInfoBootLoaderName = 1u << 9;

struct Header {
  size_t offset = 0;  // in the file; 4-byte aligned
  uint32_t flags = 0;
  // Spec 3.1.3 "The address fields of Multiboot header", valid with kFlagAoutKludge.
  uint32_t header_addr = 0;
  uint32_t load_addr = 0;
  uint32_t load_end_addr = 0;
  uint32_t bss_end_addr = 0;
  uint32_t entry_addr = 0;
};

// Spec 3.3: the information block, up to the VBE fields (left zero: no VBE here).
struct Info {
  uint32_t flags;
  uint32_t mem_lower;
  uint32_t mem_upper;
  uint32_t boot_device;
  uint32_t cmdline;
  uint32_t mods_count;
  uint32_t mods_addr;
  uint32_t syms[4];
  uint32_t mmap_length;
  uint32_t mmap_addr;
  uint32_t drives_length;
  uint32_t drives_addr;
  uint32_t config_table;
  uint32_t boot_loader_name;
  uint32_t apm_table;
  uint32_t vbe_control_info;
  uint32_t vbe_mode_info;
  uint16_t vbe_mode;
  uint16_t vbe_interface_seg;
  uint16_t vbe_interface_off;
  uint16_t vbe_interface_len;
};
static_assert(sizeof(Info) == 88);
static_assert(offsetof(Info, cmdline) == 16);
static_assert(offsetof(Info, mods_count) == 20);
static_assert(offsetof(Info, mmap_length) == 44);
static_assert(offsetof(Info, boot_loader_name) == 64);
static_assert(offsetof(Info, vbe_mode) == 80);

// Spec 3.3 "mods": one module entry.
struct Module {
  uint32_t mod_start;
  uint32_t mod_end;  // one past the last byte
  uint32_t string;
  uint32_t reserved;
};
static_assert(sizeof(Module) == 16);

// Spec 3.3 "mmap": entries are {size, base_addr, length, type} with `size` (20) not counting
// itself; base_addr sits at offset 4, unaligned, so entries are written byte by byte.
inline constexpr uint32_t kMmapEntrySize = 20;

}  // namespace multiboot

// The first header in the first 8 KiB whose checksum holds; nullopt when there is no
// magic at all, an error when the only candidates have bad checksums or are truncated.
Result<std::optional<multiboot::Header>> FindMultibootHeader(std::span<const uint8_t> kernel);

// Loads the kernel as `header` says and writes the information block at x86::kBootInfo.
Result<BootEntry> LoadMultiboot(const GuestMemory& memory, const BootImage& image,
                                const multiboot::Header& header, const MachineInfo& machine);

}  // namespace vireo::boot
