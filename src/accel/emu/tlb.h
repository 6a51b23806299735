// The software TLB: a direct-mapped cache of linear-page -> guest-physical-page
// translations, so an access that hits does not walk the page tables (4-level, PAE or 32-bit).
//
// What an entry keeps follows SDM Vol. 3 4.10.2.2: the physical frame, the combined R/W,
// U/S and XD rights of every level of the walk (checked again on every hit against the
// current CPL and CR0.WP, so a hit never grants what a walk would deny), the dirty flag of
// the final entry (a write through an entry cached with D=0 walks again so the walk sets D,
// SDM Vol. 3 4.8), and whether the page is global (PTE.G with CR4.PGE, SDM Vol. 3 4.10.2.4).
// Large pages (2 MiB, 4 MiB with 32-bit paging, 1 GiB) are cached as the 4 KiB slices that were
// used, which the SDM allows (4.10.2.3); the entry keeps the page size so INVLPG of any address in
// a large page drops every slice of it.
//
// Flush rules (SDM Vol. 3 4.10.4.1), applied by the interpreter's hooks: MOV to CR3 drops
// all but global entries; MOV to CR0 changing PG/WP/PE, MOV to CR4 changing a paging bit
// (PGE included) and EFER.NXE changes drop everything; INVLPG and a page fault drop the
// entries of that linear page, global or not.
#pragma once

#include <array>
#include <cstdint>

namespace vireo::emu {

// Rights and state of one cached translation (TlbEntry::flags).
inline constexpr uint8_t kTlbWritable = 1u << 0;  // R/W set at every level
inline constexpr uint8_t kTlbUser = 1u << 1;      // U/S set at every level
inline constexpr uint8_t kTlbNx = 1u << 2;        // XD set at some level, with EFER.NXE
inline constexpr uint8_t kTlbDirty = 1u << 3;     // D set in the final entry
inline constexpr uint8_t kTlbGlobal = 1u << 4;    // G in the final entry, with CR4.PGE

struct TlbEntry {
  uint64_t tag = 0;    // linear page (4 KiB aligned) | kValid; 0 is empty
  uint64_t frame = 0;  // guest-physical 4 KiB frame of this slice
  uint8_t flags = 0;
  uint8_t page_shift = 12;  // 12, 21, 22 or 30: the size of the page the walk found
};

class Tlb {
 public:
  static constexpr int kEntries = 256;

  // The entry for `linear`'s 4 KiB page, or nullptr. The caller checks the rights.
  const TlbEntry* Lookup(uint64_t linear) const {
    const TlbEntry& e = entries_[Index(linear)];
    return e.tag == Tag(linear) ? &e : nullptr;
  }
  // Caches a translation a walk has just made (replacing whatever shared its slot).
  void Insert(uint64_t linear, uint64_t frame, uint8_t flags, uint8_t page_shift);
  // MOV CR3 (include_global false) or a full flush.
  void Flush(bool include_global);
  // INVLPG / page fault: every entry for the page containing `linear`, of any size.
  void FlushPage(uint64_t linear);

 private:
  static constexpr uint64_t kValid = 1;
  static constexpr uint64_t kPageMask = ~uint64_t{0xfff};
  static uint64_t Tag(uint64_t linear) { return (linear & kPageMask) | kValid; }
  static unsigned Index(uint64_t linear) { return (linear >> 12) & (kEntries - 1); }

  std::array<TlbEntry, kEntries> entries_{};
  // Whether any entry may be a slice of a large page: INVLPG then scans every entry.
  bool has_large_ = false;
};

}  // namespace vireo::emu
