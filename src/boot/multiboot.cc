#include "boot/multiboot.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "arch/x86/layout.h"
#include "base/bytes.h"
#include "boot/boot_data.h"
#include "boot/elf_loader.h"

namespace vireo::boot {
namespace {

using multiboot::Header;

constexpr char kLoaderName[] = "vireo";
constexpr char kInitrdName[] = "initrd";
constexpr uint64_t kLowerMemoryMax = 640 << 10;  // conventional memory

struct Loaded {
  GuestAddress start = 0;
  GuestAddress end = 0;
  uint64_t entry = 0;
  std::string kind;
};

// Spec 3.1.3: load [load_addr, load_end_addr) from the file, the header at header_addr
// fixing which file offset that is, then zero up to bss_end_addr.
Result<Loaded> LoadAout(const GuestMemory& memory, std::span<const uint8_t> file, const Header& h) {
  if (h.header_addr < h.load_addr) {
    return Fail(
        "multiboot header_addr {:#x} is below load_addr {:#x}; the header must be inside "
        "the loaded image",
        h.header_addr, h.load_addr);
  }
  uint64_t header_delta = h.header_addr - h.load_addr;
  if (header_delta > h.offset) {
    return Fail(
        "multiboot load_addr {:#x} would start {:#x} bytes before the header, but the "
        "header is at file offset {:#x}",
        h.load_addr, header_delta, h.offset);
  }
  uint64_t file_start = h.offset - header_delta;
  uint64_t load_size = file.size() - file_start;  // load_end_addr 0: the rest of the file
  if (h.load_end_addr != 0) {
    if (h.load_end_addr <= h.header_addr) {
      return Fail("multiboot load_end_addr {:#x} is not past header_addr {:#x}", h.load_end_addr,
                  h.header_addr);
    }
    load_size = h.load_end_addr - h.load_addr;
    if (!RangeFits(file_start, load_size, file.size())) {
      return Fail(
          "multiboot load range [{:#x}, {:#x}) needs file bytes up to {:#x}, but the "
          "kernel file is {} bytes; the image is truncated",
          h.load_addr, h.load_end_addr, file_start + load_size, file.size());
    }
  }
  uint64_t load_end = uint64_t{h.load_addr} + load_size;
  uint64_t bss_end = h.bss_end_addr == 0 ? load_end : h.bss_end_addr;
  if (bss_end < load_end) {
    return Fail("multiboot bss_end_addr {:#x} is below the end of the loaded image {:#x}",
                h.bss_end_addr, load_end);
  }
  if (h.load_addr < x86::kHighMemory) {
    return Fail(
        "multiboot load_addr {:#x} is below 1 MiB, where Vireo keeps the boot "
        "structures; link the kernel at or above 0x100000",
        h.load_addr);
  }
  if (bss_end > k4GiB) {
    return Fail("multiboot image [{:#x}, {:#x}) reaches past 4 GiB", h.load_addr, bss_end);
  }
  auto span = memory.Span(h.load_addr, bss_end - h.load_addr);
  if (!span) {
    return Fail(
        "multiboot image [{:#x}, {:#x}) ({}) does not fit in guest RAM ({}); give the VM "
        "more --memory",
        h.load_addr, bss_end, SizeText(bss_end - h.load_addr), SizeText(memory.total_size()));
  }
  std::memcpy(span->data(), file.data() + file_start, load_size);
  std::memset(span->data() + load_size, 0, bss_end - load_end);
  return Loaded{h.load_addr, bss_end, h.entry_addr, "a.out kludge"};
}

Result<Loaded> LoadElf(const GuestMemory& memory, std::span<const uint8_t> file) {
  if (!elf::HasElfMagic(file)) {
    return Fail(
        "multiboot kernel has no address fields (header flag 16) and is not ELF, so "
        "there is no way to know where it loads; set flag 16 or link it as ELF");
  }
  elf::File parsed = VIREO_TRY(elf::Parse(file));
  elf::Extent extent = VIREO_TRY(elf::LoadSegments(memory, file, parsed));
  return Loaded{extent.start, extent.end, parsed.entry, parsed.is64 ? "ELF64" : "ELF32"};
}

// Spec 3.3 mem_upper: "memory above 1 MiB up to the first hole", in KiB.
uint32_t UpperMemoryKib(const std::vector<x86::E820Entry>& e820) {
  uint64_t end = x86::kHighMemory;
  // Each pass extends `end` through one RAM entry or stops: at most e820.size() passes.
  for (size_t pass = 0; pass < e820.size(); ++pass) {
    bool extended = false;
    for (const x86::E820Entry& e : e820) {
      if (e.type == x86::E820Type::kRam && e.addr <= end && end - e.addr < e.size) {
        end = e.addr + std::min(e.size, UINT64_MAX - e.addr);
        extended = true;
      }
    }
    if (!extended) break;
  }
  return static_cast<uint32_t>(std::min<uint64_t>((end - x86::kHighMemory) >> 10, UINT32_MAX));
}

uint32_t LowerMemoryKib(const std::vector<x86::E820Entry>& e820) {
  for (const x86::E820Entry& e : e820) {
    if (e.type == x86::E820Type::kRam && e.addr == 0) {
      return static_cast<uint32_t>(std::min(e.size, kLowerMemoryMax) >> 10);
    }
  }
  return 0;
}

// Collects the blocks that follow the info structure in the boot info window.
class InfoArea {
 public:
  // Reserves `size` bytes at `align`; nullopt when the window is full.
  std::optional<GuestAddress> Reserve(uint64_t size, uint64_t align) {
    uint64_t at = AlignUp(bytes_.size(), align);
    if (!RangeFits(at, size, x86::kBootInfoSize)) return std::nullopt;
    bytes_.resize(at + size);
    return x86::kBootInfo + at;
  }
  std::span<uint8_t> At(GuestAddress addr, uint64_t size) {
    return std::span<uint8_t>(bytes_).subspan(addr - x86::kBootInfo, size);
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

}  // namespace

Result<std::optional<Header>> FindMultibootHeader(std::span<const uint8_t> kernel) {
  size_t limit = std::min(kernel.size(), multiboot::kSearchBytes);
  std::optional<std::string> problem;
  // Spec 3.1.1: "contained completely within the first 8192 bytes ... 32-bit aligned".
  for (size_t offset = 0; offset + 12 <= limit; offset += 4) {
    if (LoadLe<uint32_t>(kernel, offset) != multiboot::kHeaderMagic) continue;
    uint32_t flags = LoadLe<uint32_t>(kernel, offset + 4);
    uint32_t checksum = LoadLe<uint32_t>(kernel, offset + 8);
    uint32_t sum = multiboot::kHeaderMagic + flags + checksum;
    if (sum != 0) {
      if (!problem) {
        problem = fmt::format(
            "multiboot header at offset {:#x} has a bad checksum (magic + flags + checksum = "
            "{:#x}, not 0); the kernel image is corrupt",
            offset, sum);
      }
      continue;
    }
    Header header;
    header.offset = offset;
    header.flags = flags;
    if (flags & multiboot::kFlagAoutKludge) {
      if (offset + 32 > limit) {
        return Fail(
            "multiboot header at offset {:#x} sets flag 16 but its address fields run "
            "past the first 8192 bytes or the end of the file",
            offset);
      }
      header.header_addr = LoadLe<uint32_t>(kernel, offset + 12);
      header.load_addr = LoadLe<uint32_t>(kernel, offset + 16);
      header.load_end_addr = LoadLe<uint32_t>(kernel, offset + 20);
      header.bss_end_addr = LoadLe<uint32_t>(kernel, offset + 24);
      header.entry_addr = LoadLe<uint32_t>(kernel, offset + 28);
    }
    return header;
  }
  if (problem) return Fail("{}", *problem);
  return std::nullopt;
}

Result<BootEntry> LoadMultiboot(const GuestMemory& memory, const BootImage& image,
                                const Header& header, const MachineInfo& machine) {
  if (uint32_t unknown = header.flags & multiboot::kRequiredMask & ~multiboot::kKnownRequired) {
    std::string bits;
    for (int bit = 0; bit < 16; ++bit) {
      if (unknown & (1u << bit)) bits += fmt::format("{}{}", bits.empty() ? "" : ", ", bit);
    }
    return Fail(
        "multiboot header requires features Vireo does not provide (flag bits {}); "
        "rebuild the kernel without them",
        bits);
  }
  std::span<const uint8_t> file = image.kernel;
  Loaded loaded = (header.flags & multiboot::kFlagAoutKludge)
                      ? VIREO_TRY(LoadAout(memory, file, header))
                      : VIREO_TRY(LoadElf(memory, file));
  if (loaded.entry < loaded.start || loaded.entry >= loaded.end) {
    return Fail("multiboot entry point {:#x} is outside the loaded image [{:#x}, {:#x})",
                loaded.entry, loaded.start, loaded.end);
  }
  VIREO_TRY_STATUS(WriteCmdline(memory, image.cmdline, x86::kCmdlineMax - 1));

  multiboot::Info info{};
  InfoArea area;
  GuestAddress info_addr = *area.Reserve(sizeof(info), 8);
  info.flags = multiboot::kInfoMem | multiboot::kInfoCmdline | multiboot::kInfoMmap |
               multiboot::kInfoBootLoaderName;
  info.mem_lower = LowerMemoryKib(machine.e820);
  info.mem_upper = UpperMemoryKib(machine.e820);
  info.cmdline = static_cast<uint32_t>(x86::kCmdline);

  auto mmap_addr = area.Reserve(machine.e820.size() * (4 + multiboot::kMmapEntrySize), 8);
  if (!mmap_addr) {
    return Fail("the memory map has {} entries, too many for the {} multiboot info area",
                machine.e820.size(), SizeText(x86::kBootInfoSize));
  }
  std::span<uint8_t> mmap = area.At(*mmap_addr, machine.e820.size() * 24);
  for (size_t i = 0; i < machine.e820.size(); ++i) {
    const x86::E820Entry& e = machine.e820[i];
    StoreLe<uint32_t>(mmap, i * 24, multiboot::kMmapEntrySize);
    StoreLe<uint64_t>(mmap, i * 24 + 4, e.addr);
    StoreLe<uint64_t>(mmap, i * 24 + 12, e.size);
    StoreLe<uint32_t>(mmap, i * 24 + 20, static_cast<uint32_t>(e.type));
  }
  info.mmap_addr = static_cast<uint32_t>(*mmap_addr);
  info.mmap_length = static_cast<uint32_t>(mmap.size());

  // The strings are short and fixed; the area has room once the map fitted above.
  auto name_addr = area.Reserve(sizeof(kLoaderName), 1);
  if (!name_addr) return Fail("multiboot info area is full");
  std::memcpy(area.At(*name_addr, sizeof(kLoaderName)).data(), kLoaderName, sizeof(kLoaderName));
  info.boot_loader_name = static_cast<uint32_t>(*name_addr);

  std::string note;
  if (image.initrd) {
    // mod_end is 32 bits and exclusive, so the module must end below 4 GiB.
    GuestAddress low_end = std::min(VIREO_TRY(LowRamEnd(memory)), k4GiB - kPageSize);
    // Page-aligned placement also honours header flag 0 (page-align modules).
    PlacedInitrd placed = VIREO_TRY(PlaceInitrd(memory, *image.initrd, loaded.end, low_end));
    auto string_addr = area.Reserve(sizeof(kInitrdName), 1);
    auto module_addr = area.Reserve(sizeof(multiboot::Module), 4);
    if (!string_addr || !module_addr) return Fail("multiboot info area is full");
    std::memcpy(area.At(*string_addr, sizeof(kInitrdName)).data(), kInitrdName,
                sizeof(kInitrdName));
    multiboot::Module module{static_cast<uint32_t>(placed.addr),
                             static_cast<uint32_t>(placed.addr + placed.size),
                             static_cast<uint32_t>(*string_addr), 0};
    std::memcpy(area.At(*module_addr, sizeof(module)).data(), &module, sizeof(module));
    info.flags |= multiboot::kInfoMods;
    info.mods_count = 1;
    info.mods_addr = static_cast<uint32_t>(*module_addr);
    note = fmt::format(", initrd {} at {:#x}", SizeText(placed.size), placed.addr);
  }
  std::memcpy(area.At(info_addr, sizeof(info)).data(), &info, sizeof(info));
  VIREO_TRY_STATUS(memory.WriteOrFail(x86::kBootInfo, area.bytes(), "multiboot information"));

  if (header.flags & multiboot::kFlagVideoMode) {
    note +=
        "; warning: the kernel asks for a video mode (header flag 2) but Vireo has no "
        "framebuffer, so it gets none";
  }
  BootEntry entry;
  entry.protocol = BootProtocol::kMultiboot;
  entry.mode = EntryMode::kProtected32;
  entry.entry_point = loaded.entry;
  entry.rax = multiboot::kBootloaderMagic;
  entry.rbx = info_addr;
  entry.description =
      fmt::format("multiboot {}, 32-bit entry at {:#x}{}", loaded.kind, loaded.entry, note);
  return entry;
}

}  // namespace vireo::boot
