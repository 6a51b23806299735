#include "boot/elf_loader.h"

#include <algorithm>
#include <cstring>

#include "arch/x86/layout.h"
#include "base/bytes.h"
#include "boot/boot_data.h"

namespace vireo::boot::elf {
namespace {

// gABI "ELF Identification".
constexpr size_t kEiClass = 4;
constexpr size_t kEiData = 5;
constexpr size_t kEiVersion = 6;
constexpr uint8_t kElfClass32 = 1;
constexpr uint8_t kElfClass64 = 2;
constexpr uint8_t kElfData2Lsb = 1;
constexpr uint16_t kEtExec = 2;
constexpr uint16_t kPnXnum = 0xffff;

constexpr size_t kEhdr32Size = 52;
constexpr size_t kEhdr64Size = 64;
constexpr size_t kPhdr32Size = 32;
constexpr size_t kPhdr64Size = 56;

Segment ReadPhdr(std::span<const uint8_t> ph, bool is64) {
  Segment s;
  s.type = LoadLe<uint32_t>(ph, 0);
  if (is64) {  // Elf64_Phdr: type, flags, offset, vaddr, paddr, filesz, memsz, align
    s.offset = LoadLe<uint64_t>(ph, 8);
    s.paddr = LoadLe<uint64_t>(ph, 24);
    s.filesz = LoadLe<uint64_t>(ph, 32);
    s.memsz = LoadLe<uint64_t>(ph, 40);
  } else {  // Elf32_Phdr: type, offset, vaddr, paddr, filesz, memsz, flags, align
    s.offset = LoadLe<uint32_t>(ph, 4);
    s.paddr = LoadLe<uint32_t>(ph, 12);
    s.filesz = LoadLe<uint32_t>(ph, 16);
    s.memsz = LoadLe<uint32_t>(ph, 20);
  }
  return s;
}

}  // namespace

bool HasElfMagic(std::span<const uint8_t> file) {
  return file.size() >= 4 && file[0] == 0x7f && file[1] == 'E' && file[2] == 'L' && file[3] == 'F';
}

Result<File> Parse(std::span<const uint8_t> file) {
  if (!HasElfMagic(file)) return Fail("kernel is not an ELF file (no \\x7fELF magic)");
  if (file.size() < kEhdr32Size) {
    return Fail("ELF kernel is truncated: {} bytes, shorter than an ELF header", file.size());
  }
  File elf;
  uint8_t elf_class = file[kEiClass];
  if (elf_class != kElfClass32 && elf_class != kElfClass64) {
    return Fail("ELF kernel has unknown class {} (expected 1 for ELF32 or 2 for ELF64)", elf_class);
  }
  elf.is64 = elf_class == kElfClass64;
  if (file[kEiData] != kElfData2Lsb)
    return Fail("ELF kernel is big-endian; x86 needs little-endian");
  if (file[kEiVersion] != 1) return Fail("ELF kernel has unknown ELF version {}", file[kEiVersion]);
  if (elf.is64 && file.size() < kEhdr64Size) {
    return Fail("ELF64 kernel is truncated: {} bytes, shorter than an ELF64 header", file.size());
  }

  uint16_t type = LoadLe<uint16_t>(file, 16);
  elf.machine = LoadLe<uint16_t>(file, 18);
  uint64_t phoff;
  uint16_t phentsize, phnum;
  if (elf.is64) {
    elf.entry = LoadLe<uint64_t>(file, 24);
    phoff = LoadLe<uint64_t>(file, 32);
    phentsize = LoadLe<uint16_t>(file, 54);
    phnum = LoadLe<uint16_t>(file, 56);
  } else {
    elf.entry = LoadLe<uint32_t>(file, 24);
    phoff = LoadLe<uint32_t>(file, 28);
    phentsize = LoadLe<uint16_t>(file, 42);
    phnum = LoadLe<uint16_t>(file, 44);
  }
  if (type != kEtExec) {
    return Fail("ELF kernel has e_type {}; only executables (ET_EXEC) can be booted", type);
  }
  uint16_t want_machine = elf.is64 ? kEmX86_64 : kEm386;
  if (elf.machine != want_machine) {
    return Fail("ELF{} kernel is for machine {}, not {}; build it for x86", elf.is64 ? 64 : 32,
                elf.machine, elf.is64 ? "x86-64 (62)" : "i386 (3)");
  }
  size_t min_phentsize = elf.is64 ? kPhdr64Size : kPhdr32Size;
  if (phnum == 0) return Fail("ELF kernel has no program headers");
  if (phnum == kPnXnum) return Fail("ELF kernel uses extended program header numbering (PN_XNUM)");
  if (phentsize < min_phentsize) {
    return Fail("ELF kernel has program headers of {} bytes; at least {} are needed", phentsize,
                min_phentsize);
  }
  // phnum and phentsize are 16-bit, so their product cannot overflow 64 bits.
  if (!RangeFits(phoff, uint64_t{phnum} * phentsize, file.size())) {
    return Fail(
        "ELF kernel's program headers ({} at offset {:#x}) run past the end of the "
        "{}-byte file; the image is truncated",
        phnum, phoff, file.size());
  }

  bool any_load = false;
  for (uint16_t i = 0; i < phnum; ++i) {
    Segment s = ReadPhdr(file.subspan(phoff + uint64_t{i} * phentsize, min_phentsize), elf.is64);
    if (s.type != kPtLoad && s.type != kPtNote) continue;
    if (!RangeFits(s.offset, s.filesz, file.size())) {
      return Fail(
          "ELF segment {}: file bytes [{:#x}, +{:#x}) run past the end of the {}-byte "
          "file; the kernel image is truncated or corrupt",
          i, s.offset, s.filesz, file.size());
    }
    if (s.type == kPtLoad) {
      if (s.filesz > s.memsz) {
        return Fail("ELF segment {}: p_filesz {:#x} is larger than p_memsz {:#x}", i, s.filesz,
                    s.memsz);
      }
      if (s.paddr > UINT64_MAX - s.memsz) {
        return Fail("ELF segment {}: p_paddr {:#x} + p_memsz {:#x} overflows", i, s.paddr, s.memsz);
      }
      any_load = true;
    }
    elf.segments.push_back(s);
  }
  if (!any_load) return Fail("ELF kernel has no PT_LOAD segments; nothing to load");
  return elf;
}

Result<Extent> LoadSegments(const GuestMemory& memory, std::span<const uint8_t> file,
                            const File& elf) {
  Extent extent{UINT64_MAX, 0};
  for (size_t i = 0; i < elf.segments.size(); ++i) {
    const Segment& s = elf.segments[i];
    if (s.type != kPtLoad || s.memsz == 0) continue;
    // Parse() guaranteed the file range and that paddr + memsz does not wrap.
    uint64_t end = s.paddr + s.memsz;
    if (s.paddr < x86::kHighMemory) {
      return Fail(
          "ELF segment at {:#x} lies below 1 MiB, where Vireo keeps the boot "
          "structures; link the kernel at or above 0x100000",
          s.paddr);
    }
    if (end > k4GiB) {
      return Fail(
          "ELF segment [{:#x}, {:#x}) ends above 4 GiB, beyond the boot-time mapping; "
          "link the kernel lower",
          s.paddr, end);
    }
    auto span = memory.Span(s.paddr, s.memsz);
    if (!span) {
      return Fail(
          "ELF segment [{:#x}, {:#x}) ({}) does not fit in guest RAM ({}); give the VM "
          "more --memory",
          s.paddr, end, SizeText(s.memsz), SizeText(memory.total_size()));
    }
    std::memcpy(span->data(), file.data() + s.offset, s.filesz);
    std::memset(span->data() + s.filesz, 0, s.memsz - s.filesz);
    extent.start = std::min(extent.start, s.paddr);
    extent.end = std::max(extent.end, end);
  }
  if (extent.end == 0) return Fail("ELF kernel's PT_LOAD segments are all empty; nothing to load");
  return extent;
}

}  // namespace vireo::boot::elf
