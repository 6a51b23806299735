// A strict reader for the ELF files kernels come in (System V gABI, "ELF Header" and
// "Program Header"): only what loading needs, every offset and size checked against
// the file and against overflow before use.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace vireo::boot::elf {

inline constexpr uint32_t kPtLoad = 1;
inline constexpr uint32_t kPtNote = 4;
inline constexpr uint16_t kEm386 = 3;
inline constexpr uint16_t kEmX86_64 = 62;

struct Segment {
  uint32_t type = 0;
  uint64_t offset = 0;
  uint64_t paddr = 0;
  uint64_t filesz = 0;
  uint64_t memsz = 0;
};

struct File {
  bool is64 = false;
  uint16_t machine = 0;
  uint64_t entry = 0;
  std::vector<Segment> segments;  // in program header order
};

// "\x7fELF" at the start.
bool HasElfMagic(std::span<const uint8_t> file);

// Parses the header and program headers of a little-endian ET_EXEC x86 ELF. PT_LOAD and
// PT_NOTE segments are checked to lie inside the file.
Result<File> Parse(std::span<const uint8_t> file);

// The guest-physical range the PT_LOAD segments cover.
struct Extent {
  GuestAddress start = 0;
  GuestAddress end = 0;
};

// Copies each PT_LOAD segment to p_paddr and zero-fills p_memsz past p_filesz. Every
// segment must lie in guest RAM, at or above 1 MiB (below it Vireo keeps the boot
// structures) and below 4 GiB (the reach of the boot page tables / 32-bit entry).
Result<Extent> LoadSegments(const GuestMemory& memory, std::span<const uint8_t> file,
                            const File& elf);

}  // namespace vireo::boot::elf
