#include "accel/emu/mmu.h"

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

// The permission checks of SDM Vol. 3 4.6 over the combined rights of a walk.
bool Denied(const CpuState& state, Access access, bool user, bool writable, bool user_ok, bool nx) {
  if (user && !user_ok) return true;
  if (access == Access::kWrite && !writable && (user || (state.cr0 & kCr0Wp))) return true;
  if (access == Access::kExecute && nx) return true;
  if (access == Access::kExecute && !user && user_ok && (state.cr4 & kCr4Smep)) return true;
  return false;
}

}  // namespace

Translation Translate(const CpuState& state, const GuestMemory& memory, uint64_t linear,
                      Access access, bool user) {
  Translation t;
  if (!(state.cr0 & kCr0Pg)) {
    t.ok = true;
    t.physical = state.long_mode() ? linear : (linear & 0xffffffffull);
    return t;
  }
  const uint32_t access_bits =
      (access == Access::kWrite ? kPfWrite : 0) | (user ? kPfUser : 0) |
      (access == Access::kExecute && (state.efer & kEferNxe) ? kPfFetch : 0);
  if (!state.long_mode()) {
    // 32-bit and PAE paging are not emulated yet: report a not-present fault.
    t.error_code = access_bits;
    return t;
  }
  // Non-canonical addresses are #GP/#SS, checked by the caller before translating.
  uint64_t table = state.cr3 & kAddrMask;
  bool writable = true, user_ok = true, nx = false;
  for (int level = 4; level >= 1; --level) {
    const int shift = 12 + 9 * (level - 1);
    const uint64_t entry_addr = table + ((linear >> shift) & 0x1ff) * 8;
    auto entry = memory.ReadObj<uint64_t>(entry_addr);
    if (!entry || !(*entry & kPtePresent)) {
      t.error_code = access_bits;
      return t;
    }
    uint64_t e = *entry;
    const bool large = level <= 3 && level >= 2 && (e & kPteLarge);
    if ((e & kPteNx) && !(state.efer & kEferNxe)) {
      t.error_code = access_bits | kPfPresent | kPfReserved;
      return t;
    }
    if (level == 4 && (e & kPteLarge)) {
      t.error_code = access_bits | kPfPresent | kPfReserved;
      return t;
    }
    writable = writable && (e & kPteWrite);
    user_ok = user_ok && (e & kPteUser);
    nx = nx || ((e & kPteNx) && (state.efer & kEferNxe));
    if (!(e & kPteAccessed)) {
      e |= kPteAccessed;
      memory.WriteObj<uint64_t>(entry_addr, e);
    }
    if (level == 1 || large) {
      if (Denied(state, access, user, writable, user_ok, nx)) {
        t.error_code = access_bits | kPfPresent;
        return t;
      }
      if (access == Access::kWrite && !(e & kPteDirty)) {
        e |= kPteDirty;
        memory.WriteObj<uint64_t>(entry_addr, e);
      }
      const uint64_t page_mask = (1ull << shift) - 1;
      const uint64_t frame = level == 1 ? (e & kAddrMask) : (e & kAddrMask & ~page_mask);
      t.ok = true;
      t.physical = frame | (linear & page_mask);
      t.cacheable = true;
      t.page_shift = static_cast<uint8_t>(shift);
      // G counts only in the final entry and only with CR4.PGE (SDM Vol. 3 4.10.2.4).
      t.tlb_flags = (writable ? kTlbWritable : 0) | (user_ok ? kTlbUser : 0) | (nx ? kTlbNx : 0) |
                    ((e & kPteDirty) ? kTlbDirty : 0) |
                    ((e & kPteGlobal) && (state.cr4 & kCr4Pge) ? kTlbGlobal : 0);
      return t;
    }
    table = e & kAddrMask;
  }
  return t;
}

Translation TranslateCached(Tlb& tlb, const CpuState& state, const GuestMemory& memory,
                            uint64_t linear, Access access, bool user) {
  // Paging off (or not yet 4-level): nothing to cache, the "walk" is a mask.
  if (!(state.cr0 & kCr0Pg)) return Translate(state, memory, linear, access, user);
  if (const TlbEntry* e = tlb.Lookup(linear)) {
    const uint8_t f = e->flags;
    // The rights are re-checked on every hit against the current CPL/CR0.WP/SMEP. A write
    // through an entry whose final PTE had D=0 must not complete from the TLB: the walk
    // below sets D (SDM Vol. 3 4.8). A is already set: entries exist only after a walk.
    const bool denied = Denied(state, access, user, f & kTlbWritable, f & kTlbUser, f & kTlbNx);
    if (!denied && (access != Access::kWrite || (f & kTlbDirty))) {
      Translation t;
      t.ok = true;
      t.physical = e->frame | (linear & 0xfff);
      return t;
    }
  }
  Translation t = Translate(state, memory, linear, access, user);
  if (t.ok) {
    if (t.cacheable) tlb.Insert(linear, t.physical, t.tlb_flags, t.page_shift);
  } else {
    tlb.FlushPage(linear);
  }
  return t;
}

}  // namespace vireo::emu
