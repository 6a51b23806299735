#include "accel/emu/mmu.h"

#include <optional>

namespace vireo::emu {
namespace {

constexpr uint64_t kPtePresent = 1ull << 0;
constexpr uint64_t kPteWrite = 1ull << 1;
constexpr uint64_t kPteUser = 1ull << 2;
constexpr uint64_t kPteAccessed = 1ull << 5;
constexpr uint64_t kPteDirty = 1ull << 6;
constexpr uint64_t kPteLarge = 1ull << 7;
constexpr uint64_t kPteGlobal = 1ull << 8;
constexpr uint64_t kPteNx = 1ull << 63;
constexpr uint64_t kAddrMask = 0x000ffffffffff000ull;  // MAXPHYADDR 52

// One paging-structure entry: 4 bytes (32-bit paging) or 8 (PAE, 4-level).
struct Entry {
  uint64_t addr;
  bool wide;
};

std::optional<uint64_t> ReadEntry(const GuestMemory& memory, Entry at) {
  if (at.wide) return memory.ReadObj<uint64_t>(at.addr);
  auto v = memory.ReadObj<uint32_t>(at.addr);
  if (!v) return std::nullopt;
  return *v;
}

void WriteEntry(const GuestMemory& memory, Entry at, uint64_t value) {
  if (at.wide) {
    memory.WriteObj<uint64_t>(at.addr, value);
  } else {
    memory.WriteObj<uint32_t>(at.addr, static_cast<uint32_t>(value));
  }
}

// The rights gathered along one walk, and the #PF error-code bits of the access.
struct Walk {
  const CpuState& state;
  const GuestMemory& memory;
  uint64_t linear;
  Access access;
  bool user;
  uint32_t access_bits;
  bool writable = true, user_ok = true, nx = false;

  Translation Fault(uint32_t extra) const {
    Translation t;
    t.error_code = access_bits | extra;
    return t;
  }
  // A present entry that is not the last: A is set, its rights join the walk's.
  void Table(Entry at, uint64_t e) {
    writable = writable && (e & kPteWrite);
    user_ok = user_ok && (e & kPteUser);
    nx = nx || ((e & kPteNx) && (state.efer & kEferNxe));
    if (!(e & kPteAccessed)) WriteEntry(memory, at, e | kPteAccessed);
  }
  // The entry that maps the page: rights check, A and D, and what the TLB keeps.
  Translation Leaf(Entry at, uint64_t e, uint64_t frame, int shift) {
    const uint64_t was = e;
    writable = writable && (e & kPteWrite);
    user_ok = user_ok && (e & kPteUser);
    nx = nx || ((e & kPteNx) && (state.efer & kEferNxe));
    // A is set by the walk even when the access is then denied (SDM Vol. 3 4.8).
    e |= kPteAccessed;
    if (AccessDenied(state, access, user, writable, user_ok, nx)) {
      if (e != was) WriteEntry(memory, at, e);
      return Fault(kPfPresent);
    }
    if (access == Access::kWrite) e |= kPteDirty;
    if (e != was) WriteEntry(memory, at, e);
    const uint64_t page_mask = (1ull << shift) - 1;
    Translation t;
    t.ok = true;
    t.physical = (frame & ~page_mask) | (linear & page_mask);
    t.cacheable = true;
    t.page_shift = static_cast<uint8_t>(shift);
    // G counts only in the final entry and only with CR4.PGE (SDM Vol. 3 4.10.2.4).
    t.tlb_flags = (writable ? kTlbWritable : 0) | (user_ok ? kTlbUser : 0) | (nx ? kTlbNx : 0) |
                  ((e & kPteDirty) ? kTlbDirty : 0) |
                  ((e & kPteGlobal) && (state.cr4 & kCr4Pge) ? kTlbGlobal : 0);
    return t;
  }
};

// 4-level paging (SDM Vol. 3 4.5). Non-canonical addresses are #GP/#SS, checked before.
Translation Walk4Level(Walk& w) {
  uint64_t table = w.state.cr3 & kAddrMask;
  for (int level = 4; level >= 1; --level) {
    const int shift = 12 + 9 * (level - 1);
    const Entry at{table + ((w.linear >> shift) & 0x1ff) * 8, true};
    auto entry = ReadEntry(w.memory, at);
    if (!entry || !(*entry & kPtePresent)) return w.Fault(0);
    const uint64_t e = *entry;
    if ((e & kPteNx) && !(w.state.efer & kEferNxe)) return w.Fault(kPfPresent | kPfReserved);
    if (level == 4 && (e & kPteLarge)) return w.Fault(kPfPresent | kPfReserved);
    if (level == 1 || (level <= 3 && (e & kPteLarge))) return w.Leaf(at, e, e & kAddrMask, shift);
    w.Table(at, e);
    table = e & kAddrMask;
  }
  return w.Fault(0);
}

// PAE paging (SDM Vol. 3 4.4): the PDPTE registers, then a page directory (2 MiB pages with
// PS) and a page table of 8-byte entries. PDPTEs carry no rights.
Translation WalkPae(Walk& w) {
  const uint64_t pdpte = w.state.pdpte[(w.linear >> 30) & 3];
  if (!(pdpte & kPtePresent)) return w.Fault(0);
  const Entry pde_at{(pdpte & kAddrMask) + ((w.linear >> 21) & 0x1ff) * 8, true};
  auto pde = ReadEntry(w.memory, pde_at);
  if (!pde || !(*pde & kPtePresent)) return w.Fault(0);
  if ((*pde & kPteNx) && !(w.state.efer & kEferNxe)) return w.Fault(kPfPresent | kPfReserved);
  if (*pde & kPteLarge) {
    if (*pde & 0x1fe000) return w.Fault(kPfPresent | kPfReserved);  // bits 20:13 (Table 4-9)
    return w.Leaf(pde_at, *pde, *pde & kAddrMask, 21);
  }
  w.Table(pde_at, *pde);
  const Entry pte_at{(*pde & kAddrMask) + ((w.linear >> 12) & 0x1ff) * 8, true};
  auto pte = ReadEntry(w.memory, pte_at);
  if (!pte || !(*pte & kPtePresent)) return w.Fault(0);
  if ((*pte & kPteNx) && !(w.state.efer & kEferNxe)) return w.Fault(kPfPresent | kPfReserved);
  return w.Leaf(pte_at, *pte, *pte & kAddrMask, 12);
}

// 32-bit paging (SDM Vol. 3 4.3): 4-byte entries, 4 MiB pages with CR4.PSE (PSE-36: PDE bits
// 20:13 are physical bits 39:32, bit 21 is reserved). No NX.
Translation Walk32(Walk& w) {
  const Entry pde_at{(w.state.cr3 & 0xfffff000) + ((w.linear >> 22) & 0x3ff) * 4, false};
  auto pde = ReadEntry(w.memory, pde_at);
  if (!pde || !(*pde & kPtePresent)) return w.Fault(0);
  if ((*pde & kPteLarge) && (w.state.cr4 & kCr4Pse)) {
    if (*pde & (1u << 21)) return w.Fault(kPfPresent | kPfReserved);
    const uint64_t frame = (*pde & 0xffc00000) | ((*pde >> 13) & 0xff) << 32;
    return w.Leaf(pde_at, *pde, frame, 22);
  }
  w.Table(pde_at, *pde);
  const Entry pte_at{(*pde & 0xfffff000) + ((w.linear >> 12) & 0x3ff) * 4, false};
  auto pte = ReadEntry(w.memory, pte_at);
  if (!pte || !(*pte & kPtePresent)) return w.Fault(0);
  return w.Leaf(pte_at, *pte, *pte & 0xfffff000, 12);
}

}  // namespace

Translation Translate(const CpuState& state, const GuestMemory& memory, uint64_t linear,
                      Access access, bool user) {
  if (!(state.cr0 & kCr0Pg)) {
    Translation t;
    t.ok = true;
    t.physical = state.long_mode() ? linear : (linear & 0xffffffffull);
    return t;
  }
  const bool pae = state.cr4 & kCr4Pae;
  // I/D is reported only where execute rights exist: NX (PAE or 4-level with EFER.NXE) or
  // SMEP (SDM Vol. 3 4.7).
  const bool report_fetch =
      access == Access::kExecute && ((pae && (state.efer & kEferNxe)) || (state.cr4 & kCr4Smep));
  Walk w{state,
         memory,
         linear,
         access,
         user,
         (access == Access::kWrite ? kPfWrite : 0) | (user ? kPfUser : 0) |
             (report_fetch ? kPfFetch : 0)};
  if (state.long_mode()) return Walk4Level(w);
  if (pae) return WalkPae(w);
  return Walk32(w);
}

bool LoadPdptes(uint64_t cr3, const GuestMemory& memory, std::array<uint64_t, 4>* pdpte) {
  // The four PDPTEs sit at CR3[31:5] (SDM Vol. 3 4.4.1); P=1 with a reserved bit (1, 2,
  // 5-8, 52-63: MAXPHYADDR 52, and XD, which PDPTEs do not have) is #GP and loads nothing.
  std::array<uint64_t, 4> loaded{};
  for (int i = 0; i < 4; ++i) {
    auto e = memory.ReadObj<uint64_t>((cr3 & 0xffffffe0) + i * 8);
    loaded[i] = e ? *e : 0;
    if ((loaded[i] & kPtePresent) && (loaded[i] & 0xfff00000000001e6ull)) return false;
  }
  *pdpte = loaded;
  return true;
}

Translation TranslateFill(Tlb& tlb, const CpuState& state, const GuestMemory& memory,
                          uint64_t linear, Access access, bool user) {
  Translation t = Translate(state, memory, linear, access, user);
  if (t.ok) {
    if (t.cacheable) {
      // RAM is looked up once per fill: the whole 4 KiB frame or nothing.
      auto page = memory.Span(t.physical & ~uint64_t{0xfff}, 0x1000);
      uint8_t* host = page ? page->data() : nullptr;
      tlb.Insert(linear, t.physical, host, t.tlb_flags, t.page_shift);
      t.host = host ? host + (t.physical & 0xfff) : nullptr;
    }
  } else {
    tlb.FlushPage(linear);
  }
  return t;
}

}  // namespace vireo::emu
