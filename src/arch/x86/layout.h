// The x86 guest-physical memory map Vireo gives every VM. See docs/architecture.md.
//
//   0x0000_0000  real-mode IVT and BDA (left zero)
//   0x0000_0500  boot GDT                   (kBootGdt)
//   0x0000_1000  boot info block: PVH start_info / multiboot info and their tables
//   0x0000_7000  Linux zero page (boot_params)
//   0x0000_8ff0  boot stack top
//   0x0000_9000  identity page tables (PML4, PDPT, 4 PDs: first 4 GiB in 2 MiB pages)
//   0x0002_0000  kernel command line (up to kCmdlineMax)
//   0x0009_fc00  EBDA (reserved in e820)
//   0x000e_0000  ACPI tables: RSDP first, so Linux's legacy scan finds it
//   0x0010_0000  kernel load address (1 MiB), then RAM up to the MMIO hole
//   0xc000_0000  32-bit MMIO hole: PCI BAR window (to 0xdfff_ffff), PCI ECAM at 0xe000_0000
//                (bus 0, 1 MiB), virtio-mmio slots at 0xfe00_0000, IOAPIC at 0xfec0_0000,
//                LAPIC at 0xfee0_0000
//   0x1_0000_0000 RAM above 4 GiB for guests larger than the low RAM window
#pragma once

#include <cstdint>
#include <vector>

#include "memory/guest_memory.h"

namespace vireo::x86 {

inline constexpr GuestAddress kBootGdt = 0x500;
inline constexpr GuestAddress kBootIdt = 0x520;
inline constexpr GuestAddress kBootInfo = 0x1000;  // PVH / multiboot structures
inline constexpr uint64_t kBootInfoSize = 0x6000;
inline constexpr GuestAddress kZeroPage = 0x7000;
inline constexpr GuestAddress kBootStackTop = 0x8ff0;
inline constexpr GuestAddress kPml4 = 0x9000;
inline constexpr GuestAddress kPdpt = 0xa000;
inline constexpr GuestAddress kPageDirs = 0xb000;  // 4 pages
inline constexpr GuestAddress kCmdline = 0x20000;
inline constexpr uint64_t kCmdlineMax = 0x10000;  // including the NUL
inline constexpr GuestAddress kEbda = 0x9fc00;
inline constexpr GuestAddress kAcpiTables = 0xe0000;
inline constexpr uint64_t kAcpiTablesSize = 0x20000;
inline constexpr GuestAddress kHighMemory = 0x100000;  // 1 MiB
inline constexpr GuestAddress kMmioHoleStart = 0xc0000000;
inline constexpr GuestAddress kMmioHoleEnd = 0x100000000;
// PCI: 32-bit memory BARs are allocated from this window; ECAM covers bus 0 only.
inline constexpr GuestAddress kPciBarWindowStart = 0xc0000000;
inline constexpr GuestAddress kPciBarWindowEnd = 0xe0000000;
inline constexpr GuestAddress kPciEcamBase = 0xe0000000;
inline constexpr uint64_t kPciEcamSize = 1ull << 20;  // bus 0: 32 devices x 8 functions x 4 KiB
// virtio-mmio (virtio 1.2, 4.2): one 4 KiB slot per device, interrupts on free ISA IRQs
// (edge, active high, like every ISA line), so no IOAPIC polarity overrides are needed.
inline constexpr GuestAddress kVirtioMmioBase = 0xfe000000;
inline constexpr uint64_t kVirtioMmioSlotSize = 0x1000;
inline constexpr uint32_t kVirtioMmioGsis[] = {5, 6, 7, 10, 11, 12, 14, 15};
inline constexpr GuestAddress kIoapicBase = 0xfec00000;
// The HPET's register block (IA-PC HPET 1.0a; where PCs and QEMU put it).
inline constexpr GuestAddress kHpetBase = 0xfed00000;
inline constexpr uint64_t kHpetSize = 0x400;
inline constexpr GuestAddress kLapicBase = 0xfee00000;
inline constexpr GuestAddress kRamAbove4g = 0x100000000;
// KVM needs three pages for the TSS and one for the identity map, inside the hole.
inline constexpr GuestAddress kKvmTssAddress = 0xfffbd000;
inline constexpr GuestAddress kKvmIdentityMap = 0xfffbc000;

inline constexpr uint64_t kMinMemory = 16ull << 20;
inline constexpr uint64_t kMaxMemory = 1ull << 40;  // 1 TiB

// The RAM ranges for a guest with `memory` bytes: low RAM up to the hole, the rest above 4 GiB.
std::vector<RamRange> RamLayout(uint64_t memory);

enum class E820Type : uint32_t { kRam = 1, kReserved = 2, kAcpi = 3, kNvs = 4 };

struct E820Entry {
  uint64_t addr;
  uint64_t size;
  E820Type type;
};

// The firmware memory map the guest is told about (e820, PVH memmap, multiboot mmap).
std::vector<E820Entry> E820Map(uint64_t memory);

}  // namespace vireo::x86
