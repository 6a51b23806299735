#include "boot/pvh.h"

#include <algorithm>
#include <cstring>

#include "arch/x86/layout.h"
#include "base/bytes.h"
#include "boot/boot_data.h"

namespace vireo::boot {

Result<std::optional<uint32_t>> FindPvhEntry(std::span<const uint8_t> file, const elf::File& elf) {
  for (const elf::Segment& segment : elf.segments) {
    if (segment.type != elf::kPtNote) continue;
    // Parse() checked the segment lies in the file. gABI "Note Section": namesz, descsz,
    // type, then name and desc each padded to 4 bytes. Each note is at least 12 bytes,
    // so the walk ends.
    std::span<const uint8_t> notes = file.subspan(segment.offset, segment.filesz);
    uint64_t size = notes.size();
    uint64_t pos = 0;  // invariant: pos <= size
    while (pos + 12 <= size) {
      uint32_t namesz = LoadLe<uint32_t>(notes, pos);
      uint32_t descsz = LoadLe<uint32_t>(notes, pos + 4);
      uint32_t type = LoadLe<uint32_t>(notes, pos + 8);
      uint64_t name_at = pos + 12;
      uint64_t desc_at = name_at + AlignUp(namesz, 4);  // 32-bit sizes: no 64-bit overflow
      if (!RangeFits(name_at, namesz, size) || !RangeFits(desc_at, descsz, size)) {
        return Fail(
            "ELF note at file offset {:#x} runs past the end of its PT_NOTE segment; the "
            "kernel image is corrupt",
            segment.offset + pos);
      }
      bool is_xen = namesz == 4 && std::memcmp(notes.data() + name_at, "Xen", 4) == 0;
      if (is_xen && type == pvh::kXenElfnotePhys32Entry) {
        // Linux emits the address as a pointer-sized value; only 32 bits are meaningful.
        uint64_t value;
        if (descsz == 4) {
          value = LoadLe<uint32_t>(notes, desc_at);
        } else if (descsz == 8) {
          value = LoadLe<uint64_t>(notes, desc_at);
        } else {
          return Fail("XEN_ELFNOTE_PHYS32_ENTRY note has a {}-byte value; expected 4 or 8", descsz);
        }
        if (value >= k4GiB) {
          return Fail(
              "XEN_ELFNOTE_PHYS32_ENTRY {:#x} is above 4 GiB; a 32-bit entry cannot reach "
              "it",
              value);
        }
        return static_cast<uint32_t>(value);
      }
      pos = std::min<uint64_t>(desc_at + AlignUp(descsz, 4), size);
    }
  }
  return std::nullopt;
}

Result<BootEntry> LoadPvh(const GuestMemory& memory, const BootImage& image, const elf::File& elf,
                          uint32_t entry_point, const MachineInfo& machine) {
  elf::Extent extent = VIREO_TRY(elf::LoadSegments(memory, image.kernel, elf));
  if (entry_point < extent.start || entry_point >= extent.end) {
    return Fail("PVH entry point {:#x} is outside the kernel's loaded segments [{:#x}, {:#x})",
                entry_point, extent.start, extent.end);
  }
  VIREO_TRY_STATUS(WriteCmdline(memory, image.cmdline, x86::kCmdlineMax - 1));

  // Layout inside the boot info window: start_info, the module list, the memory map.
  GuestAddress info_addr = x86::kBootInfo;
  GuestAddress modlist_addr = info_addr + sizeof(pvh::StartInfo);
  size_t modules = image.initrd ? 1 : 0;
  GuestAddress memmap_addr = modlist_addr + modules * sizeof(pvh::ModlistEntry);
  uint64_t memmap_bytes = machine.e820.size() * sizeof(pvh::MemmapEntry);
  if (!RangeFits(memmap_addr - x86::kBootInfo, memmap_bytes, x86::kBootInfoSize)) {
    return Fail("the memory map has {} entries, too many for the {} PVH boot info area",
                machine.e820.size(), SizeText(x86::kBootInfoSize));
  }

  pvh::StartInfo info{};
  info.magic = pvh::kStartInfoMagic;
  info.version = pvh::kStartInfoVersion;
  info.cmdline_paddr = x86::kCmdline;
  info.rsdp_paddr = machine.acpi_rsdp;
  std::string note;
  if (image.initrd) {
    GuestAddress low_end = VIREO_TRY(LowRamEnd(memory));
    PlacedInitrd placed = VIREO_TRY(PlaceInitrd(memory, *image.initrd, extent.end, low_end));
    pvh::ModlistEntry module{placed.addr, placed.size, 0, 0};
    VIREO_TRY_STATUS(memory.WriteOrFail(modlist_addr, AsBytes(module), "PVH module list"));
    info.nr_modules = 1;
    info.modlist_paddr = modlist_addr;
    note = fmt::format(", initrd {} at {:#x}", SizeText(placed.size), placed.addr);
  }
  for (size_t i = 0; i < machine.e820.size(); ++i) {
    const x86::E820Entry& e = machine.e820[i];
    pvh::MemmapEntry entry{e.addr, e.size, static_cast<uint32_t>(e.type), 0};
    VIREO_TRY_STATUS(
        memory.WriteOrFail(memmap_addr + i * sizeof(entry), AsBytes(entry), "PVH memory map"));
  }
  info.memmap_paddr = memmap_addr;
  info.memmap_entries = static_cast<uint32_t>(machine.e820.size());
  VIREO_TRY_STATUS(memory.WriteOrFail(info_addr, AsBytes(info), "hvm_start_info"));

  BootEntry entry;
  entry.protocol = BootProtocol::kPvh;
  entry.mode = EntryMode::kProtected32;
  entry.entry_point = entry_point;
  entry.rbx = info_addr;
  entry.description =
      fmt::format("PVH ELF{}, 32-bit entry at {:#x}{}", elf.is64 ? 64 : 32, entry_point, note);
  return entry;
}

}  // namespace vireo::boot
