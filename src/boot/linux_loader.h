// Linux/x86 boot protocol loaders (Documentation/arch/x86/boot.rst): a bzImage, whose
// protected-mode part goes at 1 MiB, or an uncompressed ELF vmlinux loaded by segment.
// Both boot through the zero page at x86::kZeroPage.
#pragma once

#include <cstdint>
#include <span>

#include "base/result.h"
#include "boot/elf_loader.h"
#include "boot/kernel_loader.h"
#include "memory/guest_memory.h"

namespace vireo::boot {

// boot.rst "The Real-Mode Kernel Header": "HdrS" at 0x202 marks protocol 2.00 or later.
bool IsBzImage(std::span<const uint8_t> kernel);

// Loads a bzImage (protocol 2.06 or later, LOADED_HIGH). Enters at load address + 0x200 in
// 64-bit mode when XLF_KERNEL_64 is set, else at the 32-bit entry (boot.rst "32-bit Boot
// Protocol").
Result<BootEntry> LoadBzImage(const GuestMemory& memory, const BootImage& image,
                              const MachineInfo& machine);

// Loads an x86-64 ELF vmlinux and enters at e_entry in 64-bit mode, with a synthesized
// setup header in the zero page.
Result<BootEntry> LoadVmlinux(const GuestMemory& memory, const BootImage& image,
                              const elf::File& elf, const MachineInfo& machine);

}  // namespace vireo::boot
