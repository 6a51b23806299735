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
//
// Sized for a kernel (kEntries slots, direct-mapped by linear page), with flushes in O(1): an
// entry keeps the epoch it was filled in, one epoch for global entries and one for the rest;
// MOV CR3 starts a new non-global epoch, a full flush both, and a lookup hits only an entry of
// the current epoch of its kind. An epoch that would wrap clears every entry for real instead.
// INVLPG of a large page looks only at the slots its slices can occupy.
//
// An entry also keeps the host address of its frame when the frame is RAM (GuestMemory::Span
// of the whole 4 KiB page, checked once at fill): guest RAM is mapped for the life of the VM,
// so a hit reads and writes RAM without looking the region up again.
#pragma once

#include <cstdint>
#include <memory>

namespace vireo::emu {

// Rights and state of one cached translation (TlbEntry::flags).
inline constexpr uint8_t kTlbWritable = 1u << 0;  // R/W set at every level
inline constexpr uint8_t kTlbUser = 1u << 1;      // U/S set at every level
inline constexpr uint8_t kTlbNx = 1u << 2;        // XD set at some level, with EFER.NXE
inline constexpr uint8_t kTlbDirty = 1u << 3;     // D set in the final entry
inline constexpr uint8_t kTlbGlobal = 1u << 4;    // G in the final entry, with CR4.PGE

struct TlbEntry {
  uint64_t tag = 0;         // linear page (4 KiB aligned) | kValid; 0 is empty
  uint64_t frame = 0;       // guest-physical 4 KiB frame of this slice
  uint8_t* host = nullptr;  // the frame's 4 KiB in host memory, or null (not RAM)
  uint32_t epoch = 0;       // the epoch of its kind (global or not) when filled
  uint8_t flags = 0;
  uint8_t page_shift = 12;  // 12, 21, 22 or 30: the size of the page the walk found
};

class Tlb {
 public:
  static constexpr int kEntries = 2048;

  Tlb();

  // The entry for `linear`'s 4 KiB page, or nullptr. The caller checks the rights.
  const TlbEntry* Lookup(uint64_t linear) const {
    const TlbEntry& e = entries_[Index(linear)];
    return e.tag == Tag(linear) && e.epoch == epochs_[(e.flags & kTlbGlobal) ? 1 : 0] ? &e
                                                                                      : nullptr;
  }
  // Caches a translation a walk has just made (replacing whatever shared its slot). `host`:
  // the frame's bytes when it is RAM, else null.
  void Insert(uint64_t linear, uint64_t frame, uint8_t* host, uint8_t flags, uint8_t page_shift);
  // MOV CR3 (include_global false) or a full flush.
  void Flush(bool include_global);
  // INVLPG / page fault: every entry for the page containing `linear`, of any size.
  void FlushPage(uint64_t linear);
  // Goes up with every flush of any kind: a translation cached outside the TLB (the
  // interpreter's current code page) is good while this is unchanged.
  uint64_t version() const { return version_; }

  // Tests: the epochs (non-global, global), and setting them to reach a wrap quickly.
  void set_epochs_for_test(uint32_t non_global, uint32_t global) {
    epochs_[0] = non_global;
    epochs_[1] = global;
  }

 private:
  static constexpr uint64_t kValid = 1;
  static constexpr uint64_t kPageMask = ~uint64_t{0xfff};
  static uint64_t Tag(uint64_t linear) { return (linear & kPageMask) | kValid; }
  static unsigned Index(uint64_t linear) { return (linear >> 12) & (kEntries - 1); }
  void Bump(int kind);
  void FlushSlow();

  std::unique_ptr<TlbEntry[]> entries_;
  uint32_t epochs_[2] = {1, 1};  // [0] non-global entries, [1] global ones
  uint64_t version_ = 0;
  // Bit n set: an entry may be a slice of a 2^n-byte page (n > 12) since the last full
  // flush; INVLPG then also looks at the slots that page's slices can occupy.
  uint64_t large_shifts_ = 0;
};

}  // namespace vireo::emu
