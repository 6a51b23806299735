// 32-bit paging (4 KiB, 4 MiB with CR4.PSE, PSE-36) and PAE paging (PDPTE registers loaded
// by MOV CR0/CR3, 2 MiB pages, NX) walks: translations, accessed/dirty bits in 4- and 8-byte
// entries, #PF error codes (SDM Vol. 3 4.3, 4.4, 4.7), and the TLB holding their pages.
#include "accel/emu/modes_testing.h"

namespace vireo::emu::testing {
namespace {

using ErrorPair = std::pair<int, int64_t>;

constexpr uint64_t kPd = 0x10000, kPt = 0x11000;                         // 32-bit paging
constexpr uint64_t kPdpt = 0x20000, kPaePd = 0x21000, kPaePt = 0x22000;  // PAE
constexpr uint32_t kP = 1, kW = 2, kU = 4, kA = 0x20, kD = 0x40, kPs = 0x80;

class PagingTest : public ModesTest {
 protected:
  Translation Walk(uint64_t linear, Access access, bool user) {
    return Translate(s_, *memory_, linear, access, user);
  }
  // 32-bit paging: code page 0x7000 identity, 0x50000 -> 0x200000 (supervisor, writable),
  // 0x51000 -> 0x201000 (user, read-only), 0x800000 -> 4 MiB page at 0x400000.
  void Paging32() {
    Flat32();
    W32(kPd, kPt | kP | kW | kU);
    W32(kPt + 7 * 4, 0x7000 | kP | kW);
    W32(kPt + 0x50 * 4, 0x200000 | kP | kW);
    W32(kPt + 0x51 * 4, 0x201000 | kP | kU);
    W32(kPd + 2 * 4, 0x400000 | kP | kW | kPs);
    s_.cr3 = kPd;
    s_.cr0 |= kCr0Pg;
  }
};

TEST_F(PagingTest, ThirtyTwoBitPagingWalksAndErrorCodes) {
  Paging32();
  Translation t = Walk(0x50123, Access::kRead, false);
  ASSERT_TRUE(t.ok);
  EXPECT_EQ(t.physical, 0x200123u);
  EXPECT_TRUE(R32(kPd) & kA);
  EXPECT_EQ(R32(kPt + 0x50 * 4) & (kA | kD), kA);  // a read sets A only
  ASSERT_TRUE(Walk(0x50000, Access::kWrite, false).ok);
  EXPECT_EQ(R32(kPt + 0x50 * 4) & (kA | kD), kA | kD);
  // Error codes: P | W | U as the SDM's Figure 4-12.
  EXPECT_EQ(Walk(0x50000, Access::kRead, true).error_code, kPfPresent | kPfUser);
  EXPECT_EQ(Walk(0x51000, Access::kWrite, true).error_code, kPfPresent | kPfWrite | kPfUser);
  EXPECT_TRUE(Walk(0x51000, Access::kWrite, false).ok);  // supervisor, CR0.WP = 0
  s_.cr0 |= kCr0Wp;
  EXPECT_EQ(Walk(0x51000, Access::kWrite, false).error_code, kPfPresent | kPfWrite);
  EXPECT_EQ(Walk(0x52000, Access::kWrite, false).error_code, kPfWrite);  // not present
  // No NX in 32-bit paging: I/D is reported only with SMEP.
  EXPECT_EQ(Walk(0x52000, Access::kExecute, false).error_code, 0u);
  s_.cr4 |= kCr4Smep;
  EXPECT_EQ(Walk(0x51000, Access::kExecute, false).error_code, kPfPresent | kPfFetch);
  s_.cr4 &= ~kCr4Smep;

  // 4 MiB pages need CR4.PSE; without it PS is ignored and the entry names a page table.
  EXPECT_FALSE(Walk(0x812345, Access::kRead, false).ok);
  s_.cr4 |= kCr4Pse;
  t = Walk(0x812345, Access::kRead, false);
  ASSERT_TRUE(t.ok);
  EXPECT_EQ(t.physical, 0x412345u);
  EXPECT_EQ(t.page_shift, 22);
  // PSE-36: PDE bits 20:13 are physical bits 39:32; bit 21 is reserved.
  W32(kPd + 3 * 4, 0x00400000 | (1u << 13) | kP | kPs);
  t = Walk(0xc00010, Access::kRead, false);
  ASSERT_TRUE(t.ok);
  EXPECT_EQ(t.physical, 0x100400010ull);
  W32(kPd + 3 * 4, 0x00400000 | (1u << 21) | kP | kPs);
  EXPECT_EQ(Walk(0xc00010, Access::kRead, false).error_code, kPfPresent | kPfReserved);

  // Executed: a load from a not-present page is #PF with CR2, error code 0.
  s_.rip = 0x7000;
  Code(0x7000, {0x8b, 0x05, 0x00, 0x20, 0x05, 0x00});  // mov eax, [0x52000]
  ASSERT_EQ(Step(), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kPageFault, 0));
  EXPECT_EQ(s_.cr2, 0x52000u);
}

TEST_F(PagingTest, FourMiBPageIsCachedAndInvlpgAnywhereDropsIt) {
  Paging32();
  s_.cr4 |= kCr4Pse;
  Tlb tlb;
  ASSERT_TRUE(TranslateCached(tlb, s_, *memory_, 0x812345, Access::kRead, false).ok);
  W32(kPd + 2 * 4, 0x000000 | kP | kW | kPs);  // remap without a flush: the TLB still hits
  EXPECT_EQ(TranslateCached(tlb, s_, *memory_, 0x812345, Access::kRead, false).physical, 0x412345u);
  tlb.FlushPage(0xbff000);  // another 4 KiB slice of the same 4 MiB page
  EXPECT_EQ(TranslateCached(tlb, s_, *memory_, 0x812345, Access::kRead, false).physical, 0x012345u);
}

TEST_F(PagingTest, PaePdptesLoadOnPagingEnableAndCr3) {
  Flat32();
  s_.cr4 = kCr4Pae;
  W64(kPdpt, kPaePd | kP);
  W64(kPaePd, kPaePt | kP | kW | kU);
  W64(kPaePd + 8, 0x600000 | kP | kW | kPs);  // 0x200000 -> 2 MiB page at 0x600000
  W64(kPaePt + 7 * 8, 0x7000 | kP | kW);
  W64(kPaePt + 0x50 * 8, 0x300000 | kP | kW | (1ull << 63));  // NX
  s_.gpr[kRbx] = kPdpt;
  s_.rip = 0x7000;
  Code(0x7000, {
                   0x0f, 0x22, 0xdb,              // mov cr3, ebx (paging off: no load)
                   0x0f, 0x20, 0xc0,              // mov eax, cr0
                   0x0d, 0x00, 0x00, 0x00, 0x80,  // or eax, PG
                   0x0f, 0x22, 0xc0,              // mov cr0, eax: loads the PDPTEs
                   0x0f, 0x22, 0xdb,              // mov cr3, ebx: loads them again
                   0x0f, 0x22, 0xdb,              // (a bad PDPTE: #GP)
               });
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.pdpte[0], 0u);
  ASSERT_EQ(Steps(3), StepStatus::kOk);
  EXPECT_EQ(s_.pdpte[0], kPaePd | kP);
  EXPECT_EQ(s_.mode(), CpuMode::kProtected32);
  EXPECT_FALSE(s_.long_mode());

  Translation t = Walk(0x250123, Access::kRead, false);
  ASSERT_TRUE(t.ok);
  EXPECT_EQ(t.physical, 0x650123u);
  EXPECT_EQ(t.page_shift, 21);
  EXPECT_EQ(R64(kPaePd + 8) & (kA | kD), kA);
  // NX without EFER.NXE is a reserved bit; with it, a fetch is denied with I/D.
  EXPECT_EQ(Walk(0x50000, Access::kRead, false).error_code, kPfPresent | kPfReserved);
  s_.efer |= kEferNxe;
  EXPECT_TRUE(Walk(0x50000, Access::kRead, false).ok);
  EXPECT_EQ(Walk(0x50000, Access::kExecute, false).error_code, kPfPresent | kPfFetch);
  EXPECT_EQ(Walk(0x60000, Access::kWrite, true).error_code, kPfWrite | kPfUser);  // not present
  // 2 MiB PDE with bits 20:13 set: reserved.
  W64(kPaePd + 16, 0x800000 | (1u << 13) | kP | kPs);
  EXPECT_EQ(Walk(0x400000, Access::kRead, false).error_code, kPfPresent | kPfReserved);

  // The PDPTEs are registers: a change in memory is not seen until CR3 is loaded again.
  W64(kPdpt, 0);
  EXPECT_TRUE(Walk(0x250123, Access::kRead, false).ok);
  W64(kPdpt, kPaePd | kP);
  W64(kPdpt + 8, 0x23000 | kP | kW);  // R/W is reserved in a PDPTE
  ASSERT_EQ(Step(), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  W64(kPdpt + 8, 0x23000 | kP);
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.pdpte[1], 0x23000u | kP);
}

}  // namespace
}  // namespace vireo::emu::testing
