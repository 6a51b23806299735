// PCI configuration access, bus-0 enumeration, BARs and capabilities (see pci.h).
#include "pci.h"

#include "acpi.h"
#include "io.h"
#include "serial.h"

namespace rt::pci {

namespace {

constexpr uint64_t kVireoEcamBase = 0xe0000000;  // src/arch/x86/layout.h
constexpr uint64_t kWindowStart = 0xc0000000;    // Vireo's 32-bit BAR window
constexpr uint64_t kWindowEnd = 0xe0000000;
constexpr uint16_t kConfigAddressPort = 0xcf8;
constexpr uint16_t kConfigDataPort = 0xcfc;
constexpr int kMaxCapabilities = 48;  // (256 - 64) / 4: more means the list loops

Access access;
uint64_t ecam_base;

bool StrEq(const char* a, const char* b) {
  for (int i = 0;; ++i) {
    if (a[i] != b[i]) return false;
    if (!a[i]) return true;
  }
}

uint64_t EcamAddress(Address a, uint16_t off) {
  return ecam_base | uint64_t{a.bus} << 20 | uint64_t{a.dev} << 15 | uint64_t{a.fn} << 12 |
         (off & 0xfff);
}

// Mechanism #1 (PCI 3.0 section 3.2.2.3.2): bit 31 enable, bus, device, function, dword.
void SelectPort(Address a, uint16_t off) {
  Outl(kConfigAddressPort, 0x80000000u | uint32_t{a.bus} << 16 | uint32_t{a.dev} << 11 |
                               uint32_t{a.fn} << 8 | (off & 0xfc));
}

bool HostBridgeAnswers() {
  uint16_t vendor = Read16({0, 0, 0}, kVendorId);
  return vendor != 0xffff && vendor != 0;
}

bool TryEcam(uint64_t base) {
  if (!base) return false;
  access = Access::kEcam;
  ecam_base = base;
  if (HostBridgeAnswers()) return true;
  access = Access::kNone;
  ecam_base = 0;
  return false;
}

bool TryPorts() {
  access = Access::kPorts;
  if (HostBridgeAnswers()) return true;
  access = Access::kNone;
  return false;
}

// The highest end of any memory BAR already assigned inside the window, so that assigned BARs
// are never overlapped.
uint64_t WindowHighWater() {
  uint64_t high = kWindowStart;
  Function fns[32];
  int n = EnumerateBus0(fns, 32);
  for (int i = 0; i < n; ++i) {
    for (int b = 0; b < 6; ++b) {
      uint32_t lo = Read32(fns[i].addr, static_cast<uint16_t>(kBar0 + 4 * b));
      if (lo & 1) continue;
      bool is64 = ((lo >> 1) & 3) == 2;
      uint64_t addr = lo & ~0xfull;
      if (is64 && b < 5) {
        addr |= uint64_t{Read32(fns[i].addr, static_cast<uint16_t>(kBar0 + 4 * b + 4))} << 32;
      }
      if (addr >= kWindowStart && addr < kWindowEnd) {
        Bar bar;
        if (ReadBar(fns[i].addr, b, bar) && addr + bar.size > high) high = addr + bar.size;
      }
      if (is64) ++b;
    }
  }
  return high;
}

}  // namespace

bool Init(const BootInfo& info) {
  if (access != Access::kNone) return true;
  char want[8] = {};
  CmdlineValue(info, "pci.config", want, sizeof(want));
  bool ok;
  if (StrEq(want, "io")) {
    ok = TryPorts();
  } else if (StrEq(want, "ecam")) {
    ok = TryEcam(McfgEcamBase()) || TryEcam(kVireoEcamBase);
  } else {
    ok = TryEcam(McfgEcamBase()) || TryEcam(kVireoEcamBase) || TryPorts();
  }
  if (!ok) {
    Printf("pci: no configuration space answers at 00:00.0\n");
    return false;
  }
  if (access == Access::kEcam) {
    Printf("pci: config via ECAM at %#lx%s\n", ecam_base,
           ecam_base == McfgEcamBase() ? " (MCFG)" : "");
  } else {
    Printf("pci: config via ports 0xcf8/0xcfc\n");
  }
  return true;
}

Access CurrentAccess() { return access; }
uint64_t EcamBase() { return ecam_base; }

uint64_t McfgEcamBase() {
  uint64_t t = AcpiFindTable("MCFG");
  if (!t) return 0;
  // PCI Firmware 3.2 table 4-3: 36-byte header, 8 reserved, then 16-byte allocations of base
  // (u64), segment (u16), start bus, end bus, 4 reserved.
  uint32_t len = MmioRead<uint32_t>(t + 4);
  for (uint64_t p = t + 44; p + 16 <= t + len; p += 16) {
    uint64_t base = MmioRead<uint64_t>(p);
    uint16_t segment = MmioRead<uint16_t>(p + 8);
    uint8_t start_bus = MmioRead<uint8_t>(p + 10);
    if (segment == 0 && start_bus == 0) return base;
  }
  return 0;
}

uint32_t Read32(Address a, uint16_t off) {
  if (access == Access::kEcam) return MmioRead<uint32_t>(EcamAddress(a, off));
  if (access != Access::kPorts || off >= 256) return 0xffffffff;
  SelectPort(a, off);
  return Inl(kConfigDataPort);
}

uint16_t Read16(Address a, uint16_t off) {
  if (access == Access::kEcam) return MmioRead<uint16_t>(EcamAddress(a, off));
  if (access != Access::kPorts || off >= 256) return 0xffff;
  SelectPort(a, off);
  return Inw(static_cast<uint16_t>(kConfigDataPort + (off & 2)));
}

uint8_t Read8(Address a, uint16_t off) {
  if (access == Access::kEcam) return MmioRead<uint8_t>(EcamAddress(a, off));
  if (access != Access::kPorts || off >= 256) return 0xff;
  SelectPort(a, off);
  return Inb(static_cast<uint16_t>(kConfigDataPort + (off & 3)));
}

void Write32(Address a, uint16_t off, uint32_t v) {
  if (access == Access::kEcam) return MmioWrite<uint32_t>(EcamAddress(a, off), v);
  if (access != Access::kPorts || off >= 256) return;
  SelectPort(a, off);
  Outl(kConfigDataPort, v);
}

void Write16(Address a, uint16_t off, uint16_t v) {
  if (access == Access::kEcam) return MmioWrite<uint16_t>(EcamAddress(a, off), v);
  if (access != Access::kPorts || off >= 256) return;
  SelectPort(a, off);
  Outw(static_cast<uint16_t>(kConfigDataPort + (off & 2)), v);
}

void Write8(Address a, uint16_t off, uint8_t v) {
  if (access == Access::kEcam) return MmioWrite<uint8_t>(EcamAddress(a, off), v);
  if (access != Access::kPorts || off >= 256) return;
  SelectPort(a, off);
  Outb(static_cast<uint16_t>(kConfigDataPort + (off & 3)), v);
}

int EnumerateBus0(Function* out, int max) {
  int n = 0;
  for (uint8_t dev = 0; dev < 32 && n < max; ++dev) {
    for (uint8_t fn = 0; fn < 8 && n < max; ++fn) {
      Address a = {0, dev, fn};
      uint32_t id = Read32(a, kVendorId);
      uint16_t vendor = static_cast<uint16_t>(id);
      if (vendor == 0xffff || vendor == 0) {
        if (fn == 0) break;  // no device: its other functions do not exist either
        continue;
      }
      out[n++] = {a, vendor, static_cast<uint16_t>(id >> 16), Read32(a, kClassRevision) >> 8};
      // Header Type bit 7: multi-function. Without it only function 0 exists.
      if (fn == 0 && !(Read8(a, kHeaderType) & 0x80)) break;
    }
  }
  return n;
}

bool ReadBar(Address a, int index, Bar& out) {
  out = {};
  if (index < 0 || index > 5) return false;
  // Walk from BAR0 so the high half of a 64-bit BAR is not taken for a BAR of its own.
  for (int i = 0; i < index;) {
    uint32_t v = Read32(a, static_cast<uint16_t>(kBar0 + 4 * i));
    i += (!(v & 1) && ((v >> 1) & 3) == 2) ? 2 : 1;
    if (i > index) return false;
  }
  uint16_t reg = static_cast<uint16_t>(kBar0 + 4 * index);
  uint32_t lo = Read32(a, reg);
  out.io = lo & 1;
  out.is64 = !out.io && ((lo >> 1) & 3) == 2 && index < 5;
  out.prefetchable = !out.io && (lo & 8);
  uint32_t hi = out.is64 ? Read32(a, static_cast<uint16_t>(reg + 4)) : 0;
  out.addr = (uint64_t{hi} << 32) | (lo & (out.io ? ~0x3u : ~0xfu));

  // Sizing (PCI 3.0 section 6.2.5.1) with decoding off, so the probe value never decodes.
  uint16_t command = Read16(a, kCommand);
  Write16(a, kCommand, command & ~(kCommandIo | kCommandMemory));
  Write32(a, reg, 0xffffffff);
  uint32_t probe_lo = Read32(a, reg);
  Write32(a, reg, lo);
  uint32_t probe_hi = 0;
  if (out.is64) {
    Write32(a, static_cast<uint16_t>(reg + 4), 0xffffffff);
    probe_hi = Read32(a, static_cast<uint16_t>(reg + 4));
    Write32(a, static_cast<uint16_t>(reg + 4), hi);
  }
  Write16(a, kCommand, command);
  if (out.io) {
    uint32_t mask = probe_lo & ~0x3u;
    out.size = mask ? (~mask + 1) & 0xffff : 0;  // x86 I/O decodes 16 bits
  } else if (out.is64) {
    uint64_t mask = (uint64_t{probe_hi} << 32) | (probe_lo & ~0xfu);
    out.size = mask ? ~mask + 1 : 0;
  } else {
    uint32_t mask = probe_lo & ~0xfu;
    out.size = mask ? uint32_t{~mask + 1} : 0;
  }
  return true;
}

bool MapMemoryBar(Address a, int index, Bar& out) {
  if (!ReadBar(a, index, out) || out.io || out.size == 0) return false;
  uint16_t command = Read16(a, kCommand);
  if (out.addr == 0 || out.addr + out.size > (1ull << 32)) {
    uint64_t base = (WindowHighWater() + out.size - 1) & ~(out.size - 1);
    if (base + out.size > kWindowEnd) {
      Printf("pci: %02x:%02x.%x BAR%d: no room for %#lx bytes\n", a.bus, a.dev, a.fn, index,
             out.size);
      return false;
    }
    uint16_t reg = static_cast<uint16_t>(kBar0 + 4 * index);
    Write16(a, kCommand, command & ~kCommandMemory);
    Write32(a, reg, static_cast<uint32_t>(base) | (Read32(a, reg) & 0xf));
    if (out.is64) Write32(a, static_cast<uint16_t>(reg + 4), 0);
    Printf("pci: %02x:%02x.%x BAR%d: %#lx -> %#lx (%#lx bytes)\n", a.bus, a.dev, a.fn, index,
           out.addr, base, out.size);
    out.addr = base;
  }
  Write16(a, kCommand, command | kCommandMemory | kCommandBusMaster);
  return true;
}

uint8_t FindCapability(Address a, uint8_t id, uint8_t after) {
  uint8_t p;
  if (after) {
    p = Read8(a, static_cast<uint16_t>(after + 1));
  } else {
    if (!(Read16(a, kStatus) & kStatusCapabilities)) return 0;
    p = Read8(a, kCapabilitiesPointer);
  }
  for (int i = 0; i < kMaxCapabilities && p >= 0x40; ++i) {
    p &= 0xfc;  // the bottom two bits are reserved
    if (Read8(a, p) == id) return p;
    p = Read8(a, static_cast<uint16_t>(p + 1));
  }
  return 0;
}

}  // namespace rt::pci
