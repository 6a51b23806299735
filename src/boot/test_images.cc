#include "boot/test_images.h"

#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdlib>
#include <utility>

#include "arch/x86/layout.h"
#include "base/bytes.h"

namespace vireo::boot::testing {

GuestMemory MakeMemory(uint64_t size) {
  auto ranges = x86::RamLayout(size);
  auto memory = GuestMemory::Create(ranges, {.transparent_huge_pages = false});
  if (!memory) std::abort();  // test set-up: no RAM means no test
  return std::move(*memory);
}

MachineInfo MakeMachine(uint64_t size) { return MachineInfo{size, x86::E820Map(size), kTestRsdp}; }

std::vector<uint8_t> Pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 7 + (i >> 8));
  return bytes;
}

std::vector<uint8_t> MakeBzImage(const BzImageOptions& o) {
  size_t setup = (size_t{o.setup_sects == 0 ? 4u : o.setup_sects} + 1) * 512;
  std::vector<uint8_t> file(setup, 0);
  std::vector<uint8_t> payload = Pattern(o.payload_size, 0x5a);
  constexpr uint32_t kPayloadOffset = 0x100;
  if (!o.compressed.empty()) {
    payload.resize(kPayloadOffset);
    payload.insert(payload.end(), o.compressed.begin(), o.compressed.end());
    payload.insert(payload.end(), {0x78, 0x56, 0x34, 0x12});  // the appended size
  }
  file.insert(file.end(), payload.begin(), payload.end());
  std::span<uint8_t> f(file);
  f[0x1f1] = o.setup_sects;
  StoreLe<uint16_t>(f, 0x1fe, 0xaa55);
  f[0x200] = 0xeb;  // jmp short, whose offset byte ends the header (boot.rst)
  f[0x201] = 0x6a;  // 0x202 + 0x6a = 0x26c
  StoreLe<uint32_t>(f, 0x202, 0x53726448);
  StoreLe<uint16_t>(f, 0x206, o.version);
  f[0x211] = o.loadflags;
  StoreLe<uint32_t>(f, 0x214, 0x100000);
  StoreLe<uint32_t>(f, 0x22c, o.initrd_addr_max);
  StoreLe<uint32_t>(f, 0x230, 0x200000);
  f[0x234] = 1;
  StoreLe<uint16_t>(f, 0x236, o.xloadflags);
  StoreLe<uint32_t>(f, 0x238, o.cmdline_size);
  StoreLe<uint32_t>(f, 0x260, o.init_size);
  if (!o.compressed.empty()) {
    StoreLe<uint32_t>(f, 0x248, kPayloadOffset);
    StoreLe<uint32_t>(f, 0x24c, static_cast<uint32_t>(o.compressed.size()));
  }
  return file;
}

std::vector<uint8_t> CompressGzip(std::span<const uint8_t> data) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  std::vector<uint8_t> out(deflateBound(&z, data.size()));
  z.next_in = const_cast<Bytef*>(data.data());
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::vector<uint8_t> CompressXz(std::span<const uint8_t> data) {
  // The kernel's xz: CRC32 check, the x86 BCJ filter, then LZMA2 (scripts/xz_wrap.sh).
  lzma_options_lzma lzma2{};
  lzma_lzma_preset(&lzma2, 6);
  lzma_filter filters[] = {
      {LZMA_FILTER_X86, nullptr}, {LZMA_FILTER_LZMA2, &lzma2}, {LZMA_VLI_UNKNOWN, nullptr}};
  std::vector<uint8_t> out(lzma_stream_buffer_bound(data.size()));
  size_t used = 0;
  if (lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, nullptr, data.data(), data.size(),
                                out.data(), &used, out.size()) != LZMA_OK) {
    std::abort();  // a test-image builder bug, not something under test
  }
  out.resize(used);
  return out;
}

std::vector<uint8_t> CompressZstd(std::span<const uint8_t> data) {
  // With the content checksum the zstd command line writes by default (as the kernel's
  // build uses it).
  std::vector<uint8_t> out(ZSTD_compressBound(data.size()));
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 19);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
  out.resize(ZSTD_compress2(cctx, out.data(), out.size(), data.data(), data.size()));
  ZSTD_freeCCtx(cctx);
  return out;
}

ElfBuilder& ElfBuilder::Load(uint64_t paddr, std::vector<uint8_t> data, uint64_t memsz) {
  segments.push_back({1, paddr, std::move(data), memsz});
  return *this;
}

ElfBuilder& ElfBuilder::Note(std::string name, uint32_t type, std::vector<uint8_t> desc) {
  std::vector<uint8_t> note(12);
  StoreLe<uint32_t>(note, 0, static_cast<uint32_t>(name.size() + 1));
  StoreLe<uint32_t>(note, 4, static_cast<uint32_t>(desc.size()));
  StoreLe<uint32_t>(note, 8, type);
  note.insert(note.end(), name.begin(), name.end());
  note.push_back(0);
  note.resize((note.size() + 3) & ~size_t{3});
  note.insert(note.end(), desc.begin(), desc.end());
  note.resize((note.size() + 3) & ~size_t{3});
  segments.push_back({4, 0, std::move(note), 0});
  return *this;
}

ElfBuilder& ElfBuilder::PvhNote(uint64_t entry_point, size_t size) {
  std::vector<uint8_t> desc(size);
  for (size_t i = 0; i < size && i < 8; ++i) desc[i] = static_cast<uint8_t>(entry_point >> (8 * i));
  return Note("Xen", 18, std::move(desc));
}

size_t ElfBuilder::PhdrOffset(size_t i) const { return (is64 ? 64 : 52) + i * (is64 ? 56 : 32); }

size_t ElfBuilder::DataOffset(size_t i) const {
  size_t offset = PhdrOffset(segments.size());
  for (size_t j = 0; j < i; ++j) offset += segments[j].data.size();
  return offset;
}

std::vector<uint8_t> ElfBuilder::Build() const {
  std::vector<uint8_t> file(DataOffset(segments.size()), 0);
  std::span<uint8_t> f(file);
  f[0] = 0x7f, f[1] = 'E', f[2] = 'L', f[3] = 'F';
  f[4] = is64 ? 2 : 1;
  f[5] = 1;
  f[6] = 1;
  StoreLe<uint16_t>(f, 16, 2);  // ET_EXEC
  StoreLe<uint16_t>(f, 18, is64 ? 62 : 3);
  StoreLe<uint32_t>(f, 20, 1);
  auto phnum = static_cast<uint16_t>(segments.size());
  if (is64) {
    StoreLe<uint64_t>(f, 24, entry);
    StoreLe<uint64_t>(f, 32, 64);
    StoreLe<uint16_t>(f, 52, 64);
    StoreLe<uint16_t>(f, 54, 56);
    StoreLe<uint16_t>(f, 56, phnum);
  } else {
    StoreLe<uint32_t>(f, 24, static_cast<uint32_t>(entry));
    StoreLe<uint32_t>(f, 28, 52);
    StoreLe<uint16_t>(f, 40, 52);
    StoreLe<uint16_t>(f, 42, 32);
    StoreLe<uint16_t>(f, 44, phnum);
  }
  for (size_t i = 0; i < segments.size(); ++i) {
    const ElfSegmentSpec& s = segments[i];
    size_t ph = PhdrOffset(i);
    uint64_t memsz = s.memsz ? s.memsz : s.data.size();
    StoreLe<uint32_t>(f, ph, s.type);
    if (is64) {
      StoreLe<uint64_t>(f, ph + 8, DataOffset(i));
      StoreLe<uint64_t>(f, ph + 16, s.paddr);
      StoreLe<uint64_t>(f, ph + 24, s.paddr);
      StoreLe<uint64_t>(f, ph + 32, s.data.size());
      StoreLe<uint64_t>(f, ph + 40, memsz);
    } else {
      StoreLe<uint32_t>(f, ph + 4, static_cast<uint32_t>(DataOffset(i)));
      StoreLe<uint32_t>(f, ph + 8, static_cast<uint32_t>(s.paddr));
      StoreLe<uint32_t>(f, ph + 12, static_cast<uint32_t>(s.paddr));
      StoreLe<uint32_t>(f, ph + 16, static_cast<uint32_t>(s.data.size()));
      StoreLe<uint32_t>(f, ph + 20, static_cast<uint32_t>(memsz));
    }
    std::copy(s.data.begin(), s.data.end(), file.begin() + DataOffset(i));
  }
  return file;
}

void PutMultibootHeader(std::vector<uint8_t>& file, size_t offset, uint32_t flags) {
  StoreLe<uint32_t>(file, offset, 0x1badb002);
  StoreLe<uint32_t>(file, offset + 4, flags);
  StoreLe<uint32_t>(file, offset + 8, 0u - 0x1badb002u - flags);
}

std::vector<uint8_t> MakeMultibootKludge(const KludgeOptions& o) {
  std::vector<uint8_t> file = Pattern(o.size, 0x33);
  PutMultibootHeader(file, o.header_offset, o.flags);
  std::span<uint8_t> f(file);
  size_t h = o.header_offset;
  StoreLe<uint32_t>(f, h + 12, static_cast<uint32_t>(o.load_addr + o.header_offset));
  StoreLe<uint32_t>(f, h + 16, o.load_addr);
  StoreLe<uint32_t>(f, h + 20, static_cast<uint32_t>(o.load_addr + o.size));
  StoreLe<uint32_t>(f, h + 24, static_cast<uint32_t>(o.load_addr + o.size + o.bss_size));
  StoreLe<uint32_t>(f, h + 28, o.load_addr + o.entry_offset);
  return file;
}

}  // namespace vireo::boot::testing
