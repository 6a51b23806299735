// PVH direct boot: an ELF kernel that announces a 32-bit entry point in a
// XEN_ELFNOTE_PHYS32_ENTRY note (xen/include/public/elfnote.h) and is started with
// %ebx pointing at an hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "base/result.h"
#include "boot/elf_loader.h"
#include "boot/kernel_loader.h"
#include "memory/guest_memory.h"

namespace vireo::boot {
namespace pvh {

inline constexpr uint32_t kXenElfnotePhys32Entry = 18;
inline constexpr uint32_t kStartInfoMagic = 0x336ec578;
inline constexpr uint32_t kStartInfoVersion = 1;  // adds the memory map fields

// start_info.h "struct hvm_start_info" (all fields little-endian, naturally aligned).
struct StartInfo {
  uint32_t magic;
  uint32_t version;
  uint32_t flags;
  uint32_t nr_modules;
  uint64_t modlist_paddr;
  uint64_t cmdline_paddr;
  uint64_t rsdp_paddr;
  // version 1
  uint64_t memmap_paddr;
  uint32_t memmap_entries;
  uint32_t reserved;
};
static_assert(sizeof(StartInfo) == 56);
static_assert(offsetof(StartInfo, modlist_paddr) == 16);
static_assert(offsetof(StartInfo, rsdp_paddr) == 32);
static_assert(offsetof(StartInfo, memmap_paddr) == 40);
static_assert(offsetof(StartInfo, memmap_entries) == 48);

// "struct hvm_modlist_entry".
struct ModlistEntry {
  uint64_t paddr;
  uint64_t size;
  uint64_t cmdline_paddr;
  uint64_t reserved;
};
static_assert(sizeof(ModlistEntry) == 32);

// "struct hvm_memmap_table_entry"; types are the e820 ones.
struct MemmapEntry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;
  uint32_t reserved;
};
static_assert(sizeof(MemmapEntry) == 24);

}  // namespace pvh

// The PHYS32_ENTRY address from the ELF's PT_NOTE segments; nullopt when there is none,
// an error when a note is malformed.
Result<std::optional<uint32_t>> FindPvhEntry(std::span<const uint8_t> file, const elf::File& elf);

// Loads the segments and writes hvm_start_info at x86::kBootInfo.
Result<BootEntry> LoadPvh(const GuestMemory& memory, const BootImage& image, const elf::File& elf,
                          uint32_t entry_point, const MachineInfo& machine);

}  // namespace vireo::boot
