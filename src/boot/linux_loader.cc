#include "boot/linux_loader.h"

#include <algorithm>
#include <cstring>
#include <memory>

#include "arch/x86/layout.h"
#include "base/bytes.h"
#include "boot/boot_data.h"
#include "boot/bootparam.h"
#include "boot/kernel_payload.h"

namespace vireo::boot {
namespace {

using linux_boot::BootParams;
using linux_boot::SetupHeader;

constexpr size_t kHeaderMagicOffset = 0x202;
constexpr size_t kVersionOffset = 0x206;
constexpr size_t kSetupHeaderEnd = linux_boot::kSetupHeaderOffset + sizeof(SetupHeader);
constexpr uint16_t kMinVersion = 0x206;  // cmdline_size; Linux 2.6.22
constexpr uint16_t kVersionInitSize = 0x20a;
constexpr uint16_t kVersionXloadflags = 0x20c;
constexpr uint16_t kVersionAcpiRsdp = 0x20e;
constexpr uint16_t kVersionPayload = 0x208;  // payload_offset / payload_length
// The version we claim in a synthesized header: kernel_info era, and what a 64-bit
// vmlinux understands.
constexpr uint16_t kSynthesizedVersion = 0x20f;
// boot.rst "64-bit Boot Protocol": the 64-bit entry is 0x200 past the load address.
constexpr uint64_t kEntry64Offset = 0x200;
// boot.rst: initrd_addr_max of a protocol 2.03+ kernel that does not say otherwise.
constexpr uint32_t kDefaultInitrdAddrMax = 0x7fffffff;

std::string VersionText(uint16_t version) {
  return fmt::format("{}.{:02}", version >> 8, version & 0xff);
}

// The parts of the zero page common to bzImage and vmlinux: command line, initrd, e820
// and RSDP. `kernel_end` bounds the initrd from below.
Result<std::string> FillZeroPage(const GuestMemory& memory, BootParams& params,
                                 const BootImage& image, const MachineInfo& machine,
                                 GuestAddress kernel_end) {
  SetupHeader& hdr = params.hdr;
  hdr.type_of_loader = linux_boot::kLoaderTypeUndefined;

  VIREO_TRY_STATUS(WriteCmdline(memory, image.cmdline, hdr.cmdline_size));
  hdr.cmd_line_ptr = static_cast<uint32_t>(x86::kCmdline);
  params.ext_cmd_line_ptr = 0;

  std::string note;
  if (image.initrd) {
    GuestAddress low_end = VIREO_TRY(LowRamEnd(memory));
    // initrd_addr_max is the highest address the initrd's last byte may occupy.
    GuestAddress limit = std::min<uint64_t>(uint64_t{hdr.initrd_addr_max} + 1, low_end);
    PlacedInitrd placed = VIREO_TRY(PlaceInitrd(memory, *image.initrd, kernel_end, limit));
    hdr.ramdisk_image = static_cast<uint32_t>(placed.addr);
    hdr.ramdisk_size = static_cast<uint32_t>(placed.size);
    params.ext_ramdisk_image = static_cast<uint32_t>(placed.addr >> 32);
    params.ext_ramdisk_size = static_cast<uint32_t>(placed.size >> 32);
    note = fmt::format(", initrd {} at {:#x}", SizeText(placed.size), placed.addr);
  }

  if (machine.e820.size() > linux_boot::kE820MaxEntries) {
    return Fail("the memory map has {} entries; the zero page holds at most {}",
                machine.e820.size(), linux_boot::kE820MaxEntries);
  }
  for (size_t i = 0; i < machine.e820.size(); ++i) {
    const x86::E820Entry& e = machine.e820[i];
    params.e820_table[i] = {e.addr, e.size, static_cast<uint32_t>(e.type)};
  }
  params.e820_entries = static_cast<uint8_t>(machine.e820.size());

  // zero-page.rst 0x070: acpi_rsdp_addr, honoured by kernels of protocol 2.14 and later.
  if (hdr.version >= kVersionAcpiRsdp && machine.acpi_rsdp != 0) {
    params.acpi_rsdp_addr = machine.acpi_rsdp;
  }
  VIREO_TRY_STATUS(memory.WriteOrFail(x86::kZeroPage, AsBytes(params), "zero page"));
  return note;
}

// The bzImage's payload unpacked on the host: its vmlinux goes where its program headers say
// (as the kernel's decompressor would put it without KASLR) and the 64-bit entry is vmlinux's
// own, with the zero page carrying the bzImage's real setup header.
Result<BootEntry> LoadUnpackedPayload(const GuestMemory& memory, const BootImage& image,
                                      const MachineInfo& machine, BootParams& params,
                                      std::span<const uint8_t> vmlinux, PayloadFormat format) {
  auto elf = elf::Parse(vmlinux);
  if (!elf)
    return Wrap(fmt::format("the bzImage's {} payload", PayloadFormatName(format)), elf.error());
  if (!elf->is64) {
    return Fail(
        "the bzImage's payload is a 32-bit ELF; Vireo unpacks only x86-64 kernels; use "
        "--kernel-decompress guest");
  }
  elf::Extent extent = VIREO_TRY(elf::LoadSegments(memory, vmlinux, *elf));
  if (elf->entry < extent.start || elf->entry >= extent.end) {
    return Fail("the bzImage's vmlinux entry point {:#x} is outside its segments [{:#x}, {:#x})",
                elf->entry, extent.start, extent.end);
  }
  std::string note = VIREO_TRY(FillZeroPage(memory, params, image, machine, extent.end));
  BootEntry entry;
  entry.protocol = BootProtocol::kLinux;
  entry.mode = EntryMode::kLong64;
  entry.entry_point = elf->entry;
  entry.rsi = x86::kZeroPage;
  entry.description = fmt::format(
      "bzImage, boot protocol {}, {} payload unpacked by Vireo ({} vmlinux), 64-bit entry at "
      "{:#x}{}",
      VersionText(params.hdr.version), PayloadFormatName(format), SizeText(vmlinux.size()),
      entry.entry_point, note);
  return entry;
}

}  // namespace

bool IsBzImage(std::span<const uint8_t> kernel) {
  return kernel.size() >= kHeaderMagicOffset + 4 &&
         LoadLe<uint32_t>(kernel, kHeaderMagicOffset) == linux_boot::kHeaderMagic;
}

Result<BootEntry> LoadBzImage(const GuestMemory& memory, const BootImage& image,
                              const MachineInfo& machine) {
  std::span<const uint8_t> file = image.kernel;
  if (!IsBzImage(file)) return Fail("kernel is not a bzImage (no \"HdrS\" at offset 0x202)");

  if (file.size() < kVersionOffset + 2) {
    return Fail("bzImage is truncated: {} bytes, shorter than its setup header", file.size());
  }
  uint16_t version = LoadLe<uint16_t>(file, kVersionOffset);
  if (version < kMinVersion) {
    return Fail("bzImage uses boot protocol {}; Vireo needs 2.06 or later (Linux 2.6.22+)",
                VersionText(version));
  }
  // boot.rst "The Real-Mode Kernel Header": the header ends at 0x202 + the byte at 0x201.
  size_t header_end =
      std::min<size_t>({kHeaderMagicOffset + file[0x201], kSetupHeaderEnd, file.size()});
  auto params = std::make_unique<BootParams>();  // zeroed; 4 KiB: keep it off the stack
  std::memcpy(reinterpret_cast<uint8_t*>(params.get()) + linux_boot::kSetupHeaderOffset,
              file.data() + linux_boot::kSetupHeaderOffset,
              header_end - linux_boot::kSetupHeaderOffset);
  SetupHeader& hdr = params->hdr;

  if (header_end < linux_boot::kSetupHeaderOffset + offsetof(SetupHeader, hardware_subarch)) {
    return Fail(
        "bzImage setup header ends at {:#x}, before the fields protocol {} defines; the "
        "image is truncated or corrupt",
        header_end, VersionText(version));
  }
  if (hdr.boot_flag != linux_boot::kBootFlag) {
    return Fail("bzImage has boot flag {:#06x} at 0x1fe, not 0xaa55; the image is corrupt",
                uint16_t{hdr.boot_flag});
  }
  if (!(hdr.loadflags & linux_boot::kLoadedHigh)) {
    return Fail(
        "kernel is a zImage (LOADED_HIGH clear) that must load at 0x10000; rebuild it as "
        "a bzImage");
  }
  // boot.rst: "If [setup_sects] is 0, the real value is 4." Plus one for the boot sector.
  uint64_t setup_bytes = (uint64_t{hdr.setup_sects == 0 ? 4u : hdr.setup_sects} + 1) * 512;
  if (setup_bytes >= file.size()) {
    return Fail("bzImage is truncated: {} bytes, but its real-mode setup alone is {} bytes",
                file.size(), setup_bytes);
  }
  std::span<const uint8_t> payload = file.subspan(setup_bytes);

  // Unpack on the host when asked and the header says where the compressed kernel is.
  std::string fallback;
  if (image.decompression == PayloadDecompression::kHost) {
    if (hdr.version < kVersionPayload) {
      fallback =
          ", payload unpacked by the guest (boot protocol before 2.08 has no payload fields)";
    } else if (uint64_t{hdr.payload_offset} + hdr.payload_length > payload.size()) {
      return Fail(
          "bzImage payload [{:#x}, +{:#x}) lies past the end of the file; the image is "
          "truncated or corrupt",
          uint32_t{hdr.payload_offset}, uint32_t{hdr.payload_length});
    } else {
      std::span<const uint8_t> packed = payload.subspan(hdr.payload_offset, hdr.payload_length);
      PayloadFormat format = DetectPayloadFormat(packed);
      if (CanDecompressOnHost(format)) {
        std::vector<uint8_t> vmlinux = VIREO_TRY(DecompressPayload(packed, memory.total_size()));
        return LoadUnpackedPayload(memory, image, machine, *params, vmlinux, format);
      }
      fallback = fmt::format(", {} payload unpacked by the guest", PayloadFormatName(format));
    }
  }
  // The kernel decompresses in place and needs init_size bytes from its load address.
  uint64_t footprint = payload.size();
  if (hdr.version >= kVersionInitSize) footprint = std::max<uint64_t>(footprint, hdr.init_size);
  if (!memory.Contains(x86::kHighMemory, footprint)) {
    return Fail(
        "kernel needs {} from 1 MiB (image {}, init_size {}) but guest RAM is {}; give "
        "the VM more --memory",
        SizeText(footprint), SizeText(payload.size()), SizeText(hdr.init_size),
        SizeText(memory.total_size()));
  }
  VIREO_TRY_STATUS(memory.WriteOrFail(x86::kHighMemory, payload, "kernel"));

  bool entry64 = hdr.version >= kVersionXloadflags && (hdr.xloadflags & linux_boot::kXlfKernel64);
  hdr.code32_start = static_cast<uint32_t>(x86::kHighMemory);
  std::string note =
      VIREO_TRY(FillZeroPage(memory, *params, image, machine, x86::kHighMemory + footprint));

  BootEntry entry;
  entry.protocol = BootProtocol::kLinux;
  entry.mode = entry64 ? EntryMode::kLong64 : EntryMode::kProtected32;
  entry.entry_point = entry64 ? x86::kHighMemory + kEntry64Offset : x86::kHighMemory;
  entry.rsi = x86::kZeroPage;
  entry.description =
      fmt::format("bzImage, boot protocol {}, {}-bit entry at {:#x}{}{}", VersionText(hdr.version),
                  entry64 ? 64 : 32, entry.entry_point, note, fallback);
  return entry;
}

Result<BootEntry> LoadVmlinux(const GuestMemory& memory, const BootImage& image,
                              const elf::File& elf, const MachineInfo& machine) {
  if (!elf.is64) {
    return Fail("kernel is a 32-bit ELF; Linux boots from a bzImage or an x86-64 vmlinux");
  }
  elf::Extent extent = VIREO_TRY(elf::LoadSegments(memory, image.kernel, elf));
  if (elf.entry < extent.start || elf.entry >= extent.end) {
    return Fail("vmlinux entry point {:#x} is outside its loaded segments [{:#x}, {:#x})",
                elf.entry, extent.start, extent.end);
  }

  // No real-mode header comes with a vmlinux: describe the kernel the way its own
  // bzImage header would (boot.rst "Details of Header Fields").
  auto params = std::make_unique<BootParams>();  // zeroed
  SetupHeader& hdr = params->hdr;
  hdr.boot_flag = linux_boot::kBootFlag;
  hdr.header = linux_boot::kHeaderMagic;
  hdr.version = kSynthesizedVersion;
  hdr.loadflags = linux_boot::kLoadedHigh;
  hdr.xloadflags = linux_boot::kXlfKernel64;
  hdr.kernel_alignment = 0x200000;
  hdr.initrd_addr_max = kDefaultInitrdAddrMax;
  hdr.cmdline_size = static_cast<uint32_t>(x86::kCmdlineMax - 1);
  hdr.init_size = static_cast<uint32_t>(extent.end - extent.start);  // below 4 GiB: fits
  std::string note = VIREO_TRY(FillZeroPage(memory, *params, image, machine, extent.end));

  BootEntry entry;
  entry.protocol = BootProtocol::kLinux;
  entry.mode = EntryMode::kLong64;
  entry.entry_point = elf.entry;
  entry.rsi = x86::kZeroPage;
  entry.description = fmt::format("vmlinux ELF64, 64-bit entry at {:#x}{}", elf.entry, note);
  return entry;
}

}  // namespace vireo::boot
