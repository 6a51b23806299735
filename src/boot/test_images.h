// Synthetic kernel images for the loader tests: just enough of each format to be
// accepted, with knobs to break each field.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "boot/kernel_loader.h"
#include "memory/guest_memory.h"

namespace vireo::boot::testing {

inline constexpr uint64_t kTestMemory = 64ull << 20;
inline constexpr GuestAddress kTestRsdp = 0xe0000;

GuestMemory MakeMemory(uint64_t size = kTestMemory);
MachineInfo MakeMachine(uint64_t size = kTestMemory);

// A byte pattern that differs at every offset of interest, to check copies.
std::vector<uint8_t> Pattern(size_t size, uint8_t seed);

struct BzImageOptions {
  uint16_t version = 0x20f;
  uint8_t setup_sects = 4;
  uint8_t loadflags = 0x01;    // LOADED_HIGH
  uint16_t xloadflags = 0x01;  // XLF_KERNEL_64
  uint32_t cmdline_size = 2048;
  uint32_t initrd_addr_max = 0x7fffffff;
  uint32_t init_size = 0;
  size_t payload_size = 0x10000;
  // When set: the compressed kernel, put at payload_offset 0x100 of the protected-mode part
  // (after a stand-in for the decompressor) and followed by the 4-byte size the kernel's
  // build appends; payload_offset/payload_length (0x248/0x24c) describe it.
  std::vector<uint8_t> compressed;
};
std::vector<uint8_t> MakeBzImage(const BzImageOptions& options = {});

struct ElfSegmentSpec {
  uint32_t type = 1;  // PT_LOAD
  uint64_t paddr = 0;
  std::vector<uint8_t> data;
  uint64_t memsz = 0;  // 0: data.size()
};

// Builds an ET_EXEC x86 ELF: header, program headers, then each segment's data.
struct ElfBuilder {
  bool is64 = true;
  uint64_t entry = 0;
  std::vector<ElfSegmentSpec> segments;

  ElfBuilder& Load(uint64_t paddr, std::vector<uint8_t> data, uint64_t memsz = 0);
  ElfBuilder& Note(std::string name, uint32_t type, std::vector<uint8_t> desc);
  ElfBuilder& PvhNote(uint64_t entry_point, size_t size = 8);
  std::vector<uint8_t> Build() const;
  // File offset of program header `i` and of segment `i`'s data in Build()'s output.
  size_t PhdrOffset(size_t i) const;
  size_t DataOffset(size_t i) const;
};

// Compress `data` the way the kernel's build does for CONFIG_KERNEL_GZIP / _XZ / _ZSTD.
std::vector<uint8_t> CompressGzip(std::span<const uint8_t> data);
std::vector<uint8_t> CompressXz(std::span<const uint8_t> data);
std::vector<uint8_t> CompressZstd(std::span<const uint8_t> data);

// A multiboot header (at `offset`) with a valid checksum for `flags`.
void PutMultibootHeader(std::vector<uint8_t>& file, size_t offset, uint32_t flags);

struct KludgeOptions {
  uint32_t flags = 1u << 16;
  uint32_t load_addr = 0x100000;
  size_t header_offset = 0x40;
  size_t size = 0x3000;  // file size; all of it loaded
  uint32_t bss_size = 0x2000;
  uint32_t entry_offset = 0x80;  // from load_addr
};
std::vector<uint8_t> MakeMultibootKludge(const KludgeOptions& options = {});

}  // namespace vireo::boot::testing
