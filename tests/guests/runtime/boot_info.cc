// Boot protocol layouts: Linux Documentation/arch/x86/boot.rst and zero-page.rst; Xen
// public/arch-x86/hvm/start_info.h (PVH); Multiboot Specification 0.6.96 section 3.3.
#include "boot_info.h"

#include "serial.h"

namespace rt {

namespace {

template <typename T>
T Load(uint64_t addr) {
  return *reinterpret_cast<const volatile T*>(addr);
}

void CopyCmdline(uint64_t addr, BootInfo& out) {
  out.cmdline[0] = 0;
  out.cmdline_truncated = false;
  if (addr == 0) return;
  int i = 0;
  for (; i < BootInfo::kMaxCmdline - 1; ++i) {
    char c = Load<char>(addr + i);
    if (!c) break;
    out.cmdline[i] = c;
  }
  out.cmdline[i] = 0;
  out.cmdline_truncated = Load<char>(addr + i) != 0;
}

void AddRange(BootInfo& out, uint64_t addr, uint64_t size, uint32_t type) {
  if (out.memory_count == BootInfo::kMaxRanges) return;
  out.memory[out.memory_count++] = {addr, size, type};
}

// Zero page offsets (zero-page.rst / boot.rst).
constexpr uint64_t kZpAcpiRsdp = 0x070;
constexpr uint64_t kZpExtRamdiskImage = 0x0c0;
constexpr uint64_t kZpExtRamdiskSize = 0x0c4;
constexpr uint64_t kZpExtCmdLinePtr = 0x0c8;
constexpr uint64_t kZpE820Entries = 0x1e8;
constexpr uint64_t kZpRamdiskImage = 0x218;
constexpr uint64_t kZpRamdiskSize = 0x21c;
constexpr uint64_t kZpCmdLinePtr = 0x228;
constexpr uint64_t kZpE820Table = 0x2d0;
constexpr int kZpE820Max = 128;

void ParseLinux(uint64_t zp, BootInfo& out) {
  uint64_t cmdline =
      Load<uint32_t>(zp + kZpCmdLinePtr) | uint64_t{Load<uint32_t>(zp + kZpExtCmdLinePtr)} << 32;
  CopyCmdline(cmdline, out);
  int n = Load<uint8_t>(zp + kZpE820Entries);
  if (n > kZpE820Max) n = kZpE820Max;
  for (int i = 0; i < n; ++i) {
    uint64_t e = zp + kZpE820Table + 20 * i;
    AddRange(out, Load<uint64_t>(e), Load<uint64_t>(e + 8), Load<uint32_t>(e + 16));
  }
  out.initrd_addr = Load<uint32_t>(zp + kZpRamdiskImage) |
                    uint64_t{Load<uint32_t>(zp + kZpExtRamdiskImage)} << 32;
  out.initrd_size =
      Load<uint32_t>(zp + kZpRamdiskSize) | uint64_t{Load<uint32_t>(zp + kZpExtRamdiskSize)} << 32;
  out.rsdp_addr = Load<uint64_t>(zp + kZpAcpiRsdp);
}

// struct hvm_start_info (version 1 adds memmap_paddr / memmap_entries).
constexpr uint32_t kPvhMagic = 0x336ec578;

void ParsePvh(uint64_t si, BootInfo& out) {
  if (Load<uint32_t>(si) != kPvhMagic) {
    Printf("bootinfo: bad hvm_start_info magic %#x\n", Load<uint32_t>(si));
    out.valid = false;
    return;
  }
  uint32_t version = Load<uint32_t>(si + 4);
  uint32_t nr_modules = Load<uint32_t>(si + 12);
  uint64_t modlist = Load<uint64_t>(si + 16);
  CopyCmdline(Load<uint64_t>(si + 24), out);
  out.rsdp_addr = Load<uint64_t>(si + 32);
  if (nr_modules > 0 && modlist) {  // hvm_modlist_entry: paddr, size, cmdline_paddr, reserved
    out.initrd_addr = Load<uint64_t>(modlist);
    out.initrd_size = Load<uint64_t>(modlist + 8);
  }
  if (version >= 1) {  // hvm_memmap_table_entry: addr, size, type, reserved
    uint64_t map = Load<uint64_t>(si + 40);
    uint32_t n = Load<uint32_t>(si + 48);
    for (uint32_t i = 0; map && i < n && i < BootInfo::kMaxRanges; ++i) {
      uint64_t e = map + 24 * i;
      AddRange(out, Load<uint64_t>(e), Load<uint64_t>(e + 8), Load<uint32_t>(e + 16));
    }
  }
}

constexpr uint32_t kMultibootMagic = 0x2BADB002;
constexpr uint32_t kMbFlagMem = 1 << 0;
constexpr uint32_t kMbFlagCmdline = 1 << 2;
constexpr uint32_t kMbFlagMods = 1 << 3;
constexpr uint32_t kMbFlagMmap = 1 << 6;

void ParseMultiboot(uint64_t mbi, uint32_t magic, BootInfo& out) {
  if (magic != kMultibootMagic) {
    Printf("bootinfo: bad multiboot magic %#x\n", magic);
    out.valid = false;
    return;
  }
  uint32_t flags = Load<uint32_t>(mbi);
  if (flags & kMbFlagMem) {
    out.mb_mem_lower = Load<uint32_t>(mbi + 4);
    out.mb_mem_upper = Load<uint32_t>(mbi + 8);
  }
  if (flags & kMbFlagCmdline) CopyCmdline(Load<uint32_t>(mbi + 16), out);
  if ((flags & kMbFlagMods) && Load<uint32_t>(mbi + 20) > 0) {
    uint64_t mod = Load<uint32_t>(mbi + 24);  // mod_start, mod_end, string, reserved
    out.initrd_addr = Load<uint32_t>(mod);
    out.initrd_size = Load<uint32_t>(mod + 4) - Load<uint32_t>(mod);
  }
  if (flags & kMbFlagMmap) {
    uint64_t p = Load<uint32_t>(mbi + 48);
    uint64_t end = p + Load<uint32_t>(mbi + 44);
    // Each entry: size (not counting itself), base_addr, length, type.
    for (int i = 0; p < end && i < BootInfo::kMaxRanges; ++i) {
      AddRange(out, Load<uint64_t>(p + 4), Load<uint64_t>(p + 12), Load<uint32_t>(p + 20));
      p += Load<uint32_t>(p) + 4;
    }
  }
}

bool RsdpChecksumOk(uint64_t p) {
  uint8_t sum = 0;
  for (int i = 0; i < 20; ++i) sum += Load<uint8_t>(p + i);
  return sum == 0;
}

}  // namespace

const char* BootProtocolName(BootProtocol p) {
  switch (p) {
    case BootProtocol::kLinux:
      return "linux";
    case BootProtocol::kPvh:
      return "pvh";
    case BootProtocol::kMultiboot:
      return "multiboot";
    default:
      return "unknown";
  }
}

uint64_t ScanForRsdp() {
  for (uint64_t p = 0xe0000; p < 0x100000; p += 16) {
    if (Load<uint32_t>(p) == 0x20445352 && Load<uint32_t>(p + 4) == 0x20525450 &&
        RsdpChecksumOk(p)) {
      return p;
    }
  }
  return 0;
}

void ParseBootInfo(BootProtocol protocol, uint64_t info, uint32_t magic, BootInfo& out) {
  out = {};
  out.protocol = protocol;
  out.valid = true;
  switch (protocol) {
    case BootProtocol::kLinux:
      ParseLinux(info, out);
      break;
    case BootProtocol::kPvh:
      ParsePvh(info, out);
      break;
    case BootProtocol::kMultiboot:
      ParseMultiboot(info, magic, out);
      break;
    default:
      out.valid = false;
  }
  out.rsdp_from_boot_info = out.rsdp_addr != 0;
  if (!out.rsdp_addr) out.rsdp_addr = ScanForRsdp();
}

bool CmdlineValue(const BootInfo& info, const char* key, char* out, int out_size) {
  int klen = 0;
  while (key[klen]) ++klen;
  const char* p = info.cmdline;
  while (*p) {
    while (*p == ' ') ++p;
    const char* word = p;
    while (*p && *p != ' ') ++p;
    if (p - word > klen && word[klen] == '=') {
      bool match = true;
      for (int i = 0; i < klen; ++i) match = match && word[i] == key[i];
      if (match) {
        int n = 0;
        for (const char* v = word + klen + 1; v < p && n < out_size - 1; ++v) out[n++] = *v;
        out[n] = 0;
        return true;
      }
    }
  }
  return false;
}

uint64_t CmdlineNumber(const BootInfo& info, const char* key, uint64_t fallback) {
  char v[24];
  if (!CmdlineValue(info, key, v, sizeof(v)) || v[0] < '0' || v[0] > '9') return fallback;
  uint64_t n = 0;
  for (const char* p = v; *p >= '0' && *p <= '9'; ++p) n = n * 10 + static_cast<uint64_t>(*p - '0');
  return n;
}

}  // namespace rt
