// Format detection and dispatch to the loader for each boot protocol.
#include "boot/kernel_loader.h"

#include "boot/boot_data.h"
#include "boot/elf_loader.h"
#include "boot/linux_loader.h"
#include "boot/multiboot.h"
#include "boot/pvh.h"

namespace vireo::boot {
namespace {

Result<BootEntry> LoadLinux(const GuestMemory& memory, const BootImage& image,
                            const MachineInfo& machine) {
  if (IsBzImage(image.kernel)) return LoadBzImage(memory, image, machine);
  if (!elf::HasElfMagic(image.kernel)) {
    return Fail(
        "--boot linux: kernel is neither a bzImage (no \"HdrS\" at 0x202) nor an ELF "
        "vmlinux (first bytes {})",
        FirstBytesText(image.kernel));
  }
  elf::File elf = VIREO_TRY(elf::Parse(image.kernel));
  return LoadVmlinux(memory, image, elf, machine);
}

Result<BootEntry> LoadPvhKernel(const GuestMemory& memory, const BootImage& image,
                                const MachineInfo& machine) {
  if (!elf::HasElfMagic(image.kernel)) {
    return Fail(
        "--boot pvh: kernel is not an ELF file (first bytes {}); PVH needs an ELF kernel "
        "with a XEN_ELFNOTE_PHYS32_ENTRY note",
        FirstBytesText(image.kernel));
  }
  elf::File elf = VIREO_TRY(elf::Parse(image.kernel));
  std::optional<uint32_t> entry = VIREO_TRY(FindPvhEntry(image.kernel, elf));
  if (!entry) {
    return Fail(
        "--boot pvh: kernel has no XEN_ELFNOTE_PHYS32_ENTRY note; build it with "
        "CONFIG_PVH or use --boot linux");
  }
  return LoadPvh(memory, image, elf, *entry, machine);
}

Result<BootEntry> LoadMultibootKernel(const GuestMemory& memory, const BootImage& image,
                                      const MachineInfo& machine) {
  std::optional<multiboot::Header> header = VIREO_TRY(FindMultibootHeader(image.kernel));
  if (!header) {
    return Fail(
        "--boot multiboot: kernel has no multiboot header (magic 0x1BADB002) in its "
        "first 8192 bytes");
  }
  return LoadMultiboot(memory, image, *header, machine);
}

// kAuto: bzImage, then ELF with a PVH note (a vmlinux built with CONFIG_PVH has one too,
// and then takes its memory map and RSDP from hvm_start_info), then ELF64 vmlinux, then
// multiboot. An ELF64 that carries a valid multiboot header is taken as multiboot.
Result<BootEntry> LoadDetected(const GuestMemory& memory, const BootImage& image,
                               const MachineInfo& machine) {
  std::span<const uint8_t> kernel = image.kernel;
  if (IsBzImage(kernel)) return LoadBzImage(memory, image, machine);
  if (elf::HasElfMagic(kernel)) {
    auto elf = elf::Parse(kernel);
    if (elf) {
      std::optional<uint32_t> entry = VIREO_TRY(FindPvhEntry(kernel, *elf));
      if (entry) return LoadPvh(memory, image, *elf, *entry, machine);
      // An ELF64 that is not PVH is a vmlinux, unless it is a multiboot kernel.
      auto header = FindMultibootHeader(kernel);
      bool multiboot = header && header->has_value();
      if (elf->is64 && !multiboot) return LoadVmlinux(memory, image, *elf, machine);
    } else if (!FindMultibootHeader(kernel).value_or(std::nullopt)) {
      return tl::unexpected(elf.error());
    }
  }
  std::optional<multiboot::Header> header = VIREO_TRY(FindMultibootHeader(kernel));
  if (header) return LoadMultiboot(memory, image, *header, machine);
  if (elf::HasElfMagic(kernel)) {
    return Fail(
        "kernel is a 32-bit ELF with neither a PVH note (XEN_ELFNOTE_PHYS32_ENTRY) nor a "
        "multiboot header; Vireo cannot tell how to start it");
  }
  return Fail(
      "kernel image is not a bzImage, ELF or multiboot kernel (first bytes {}); pass a "
      "bzImage, vmlinux, PVH or multiboot kernel",
      FirstBytesText(kernel));
}

}  // namespace

std::string_view BootProtocolName(BootProtocol protocol) {
  switch (protocol) {
    case BootProtocol::kAuto:
      return "auto";
    case BootProtocol::kLinux:
      return "linux";
    case BootProtocol::kPvh:
      return "pvh";
    case BootProtocol::kMultiboot:
      return "multiboot";
  }
  return "unknown";
}

Result<BootEntry> LoadKernel(const GuestMemory& memory, const BootImage& image,
                             BootProtocol protocol, const MachineInfo& machine) {
  if (image.kernel.empty()) return Fail("kernel image is empty; check the --kernel path");
  if (machine.e820.empty()) return Fail("no memory map to give the kernel (empty e820 map)");
  switch (protocol) {
    case BootProtocol::kAuto:
      return LoadDetected(memory, image, machine);
    case BootProtocol::kLinux:
      return LoadLinux(memory, image, machine);
    case BootProtocol::kPvh:
      return LoadPvhKernel(memory, image, machine);
    case BootProtocol::kMultiboot:
      return LoadMultibootKernel(memory, image, machine);
  }
  return Fail("unknown boot protocol {}", static_cast<int>(protocol));
}

}  // namespace vireo::boot
