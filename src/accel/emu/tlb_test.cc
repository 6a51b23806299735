// Software TLB tests: hits (proved by a stale translation after the page table changed
// behind the TLB, which the SDM allows until a flush), the flush rules of SDM Vol. 3
// 4.10.4.1 including global pages, rights re-checked on every hit, and the A/D bits of
// SDM Vol. 3 4.8 (a write through an entry cached by a read walks again and sets D).
#include "accel/emu/tlb.h"

#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "accel/emu/interpreter.h"
#include "accel/emu/mmu.h"

namespace vireo::emu {
namespace {

constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kPt = 0x4000;
constexpr uint64_t kPage = 0x10000;    // 4 KiB page: PT entry 0x10
constexpr uint64_t kOther = 0x11000;   // a second frame to remap kPage to
constexpr uint64_t kLarge = 0x200000;  // 2 MiB page: PD entry 1
constexpr uint64_t kP = 1, kW = 2, kU = 4, kA = 1 << 5, kD = 1 << 6, kPs = 1 << 7, kG = 1 << 8,
                   kNx = 1ull << 63;

class TlbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RamRange range{0, 4 << 20};
    auto m = GuestMemory::Create({&range, 1}, {});
    ASSERT_TRUE(m);
    memory_.emplace(std::move(*m));
    W(kPml4, kPdpt | kP | kW | kU);
    W(kPdpt, kPd | kP | kW | kU);
    W(kPd, kPt | kP | kW | kU);
    W(kPd + 8, kLarge | kP | kW | kU | kPs);
    for (uint64_t i = 0; i < 512; ++i) W(kPt + i * 8, (i << 12) | kP | kW | kU);
    s_.cr0 = kCr0Pe | kCr0Pg | kCr0Wp;
    s_.cr3 = kPml4;
    s_.cr4 = kCr4Pae | kCr4Pge;
    s_.efer = kEferLme | kEferLma | kEferNxe;
    s_.seg[kCs].l = true;
  }
  void W(uint64_t a, uint64_t v) { ASSERT_TRUE(memory_->WriteObj<uint64_t>(a, v)); }
  uint64_t R(uint64_t a) { return *memory_->ReadObj<uint64_t>(a); }
  static uint64_t Pte(uint64_t linear) { return kPt + ((linear >> 12) & 0x1ff) * 8; }
  Translation T(uint64_t linear, Access access = Access::kRead, bool user = false) {
    return TranslateCached(tlb_, s_, *memory_, linear, access, user);
  }

  std::optional<GuestMemory> memory_;
  CpuState s_;
  Tlb tlb_;
};

TEST_F(TlbTest, MissWalksAndFillsThenHitSkipsTheWalk) {
  EXPECT_EQ(tlb_.Lookup(kPage), nullptr);
  Translation t = T(kPage + 0x123);
  ASSERT_TRUE(t.ok);
  EXPECT_EQ(t.physical, kPage + 0x123);
  ASSERT_NE(tlb_.Lookup(kPage + 0xfff), nullptr);
  EXPECT_EQ(tlb_.Lookup(kPage + 0x1000), nullptr) << "the next page is its own entry";
  // Remap behind the TLB's back: without a flush the cached frame is still used.
  W(Pte(kPage), kOther | kP | kW | kU | kA);
  EXPECT_EQ(T(kPage + 8).physical, kPage + 8) << "a hit does not walk";
  // A page kEntries pages further shares the direct-mapped slot and evicts it (mapped here
  // by a 2 MiB page of its own).
  const uint64_t alias = kPage + Tlb::kEntries * uint64_t{0x1000};
  W(kPd + (alias >> 21) * 8, (alias & ~uint64_t{0x1fffff}) | kP | kW | kU | kPs);
  EXPECT_TRUE(T(alias).ok);
  EXPECT_EQ(T(kPage + 8).physical, kOther + 8) << "evicted: walked again";
}

TEST_F(TlbTest, Cr3FlushKeepsGlobalPagesInvlpgAndFullFlushDropThem) {
  const uint64_t global = kPage, local = kPage + 0x1000, nonpge = kPage + 0x2000;
  W(Pte(global), global | kP | kW | kU | kG);
  ASSERT_TRUE(T(global).ok);
  ASSERT_TRUE(T(local).ok);
  s_.cr4 &= ~kCr4Pge;  // G without CR4.PGE is ignored (SDM Vol. 3 4.10.2.4)
  W(Pte(nonpge), nonpge | kP | kW | kU | kG);
  ASSERT_TRUE(T(nonpge).ok);
  s_.cr4 |= kCr4Pge;
  for (uint64_t page : {global, local, nonpge}) W(Pte(page), kOther | kP | kW | kU | kG);

  tlb_.Flush(false);  // MOV CR3
  EXPECT_EQ(T(global).physical, global) << "global entry survives MOV CR3";
  EXPECT_EQ(T(local).physical, kOther) << "non-global entry dropped";
  EXPECT_EQ(T(nonpge).physical, kOther) << "G counted only with CR4.PGE";

  W(Pte(global), global | kP | kW | kU | kG);  // back, and cached again as global
  tlb_.FlushPage(global);
  ASSERT_EQ(T(global).physical, global);
  W(Pte(global), kOther | kP | kW | kU | kG);
  tlb_.FlushPage(global);  // INVLPG drops global entries too
  EXPECT_EQ(T(global).physical, kOther);

  W(Pte(global), global | kP | kW | kU | kG);
  tlb_.FlushPage(global);
  ASSERT_EQ(T(global).physical, global);
  W(Pte(global), kOther | kP | kW | kU | kG);
  tlb_.Flush(true);  // CR4.PGE / CR0.PG change
  EXPECT_EQ(T(global).physical, kOther);
}

TEST_F(TlbTest, InvlpgOfAnyAddressInALargePageDropsEverySlice) {
  ASSERT_EQ(T(kLarge + 0x5000).physical, kLarge + 0x5000);
  ASSERT_EQ(T(kLarge + 0x1ff000).physical, kLarge + 0x1ff000);
  ASSERT_EQ(T(kPage).physical, kPage);
  W(kPd + 8, (kLarge + 0x200000) | kP | kW | kU | kPs);
  W(Pte(kPage), kOther | kP | kW | kU);
  tlb_.FlushPage(kLarge + 0x100000);  // neither cached slice, same 2 MiB page
  EXPECT_EQ(T(kLarge + 0x5000).physical, kLarge + 0x205000);
  EXPECT_EQ(T(kLarge + 0x1ff000).physical, kLarge + 0x3ff000);
  EXPECT_EQ(T(kPage).physical, kPage) << "a 4 KiB page outside it stays";
}

// With thousands of slots, INVLPG looks only at the slots a large page's slices can occupy:
// every cached slice goes, a 4 KiB entry sharing one of those slots stays.
TEST_F(TlbTest, InvlpgDropsAllSlicesOfALargePageAndKeepsA4KiBPageInTheirSlots) {
  static_assert(Tlb::kEntries >= 1024, "the slices below must not evict each other");
  for (uint64_t off = 0; off < 0x200000; off += 0x1000) {
    ASSERT_EQ(T(kLarge + off).physical, kLarge + off);
  }
  // A 4 KiB page whose slot is that of slice 0x5000 (another page table, PD entry 5+).
  const uint64_t small = kLarge + 0x5000 + Tlb::kEntries * uint64_t{0x1000};
  const uint64_t pt2 = 0x5000;
  W(kPd + (small >> 21) * 8, pt2 | kP | kW | kU);
  W(pt2 + ((small >> 12) & 0x1ff) * 8, kPage | kP | kW | kU);
  ASSERT_EQ(T(small).physical, kPage);
  ASSERT_EQ(tlb_.Lookup(kLarge + 0x5000), nullptr) << "the 4 KiB page took that slot";
  W(kPd + 8, (kLarge + 0x200000) | kP | kW | kU | kPs);
  W(pt2 + ((small >> 12) & 0x1ff) * 8, kOther | kP | kW | kU);
  tlb_.FlushPage(kLarge + 0x123456);
  for (uint64_t off = 0; off < 0x200000; off += 0x1000) {
    ASSERT_EQ(tlb_.Lookup(kLarge + off), nullptr) << "slice " << off << " survived INVLPG";
  }
  EXPECT_EQ(T(kLarge + 0x7000).physical, kLarge + 0x207000);
  EXPECT_EQ(T(small).physical, kPage) << "the 4 KiB page is not part of the large page";
}

// A 1 GiB page has more slices than the TLB has slots: INVLPG anywhere in it drops them all.
TEST_F(TlbTest, InvlpgOfAGigabytePageDropsSlicesInAnySlot) {
  const uint64_t giant = 0x40000000;  // PDPT entry 1
  W(kPdpt + 8, 0 | kP | kW | kU | kPs);
  ASSERT_EQ(T(giant + 0x3000).physical, 0x3000u);
  ASSERT_EQ(T(giant + 0x12345000).physical, 0x12345000u);
  W(kPdpt + 8, 0x40000000 | kP | kW | kU | kPs);
  tlb_.FlushPage(giant + 0x3fffffff);
  EXPECT_EQ(T(giant + 0x3000).physical, 0x40003000u);
  EXPECT_EQ(T(giant + 0x12345000).physical, 0x52345000u);
}

// Flushes are epochs: a global entry outlives any number of MOV CR3 flushes, a full flush ends
// it, and an epoch that wraps clears the entries for real, so an entry filled in epoch 1 does
// not come back when the counter returns to 1.
TEST_F(TlbTest, GlobalEntriesSurviveManyCr3FlushesAndEpochWrapClearsEverything) {
  const uint64_t global = kPage, local = kPage + 0x1000;
  W(Pte(global), global | kP | kW | kU | kG);
  ASSERT_TRUE(T(global).ok);
  for (int i = 0; i < 10000; ++i) tlb_.Flush(false);
  EXPECT_NE(tlb_.Lookup(global), nullptr) << "global entry dropped by MOV CR3";
  tlb_.Flush(true);
  EXPECT_EQ(tlb_.Lookup(global), nullptr);

  Tlb fresh;  // epochs at 1: both entries are filled in epoch 1
  ASSERT_TRUE(TranslateCached(fresh, s_, *memory_, local, Access::kRead, false).ok);
  ASSERT_TRUE(TranslateCached(fresh, s_, *memory_, global, Access::kRead, false).ok);
  fresh.set_epochs_for_test(0xffffffff, 0xffffffff);  // 2^32 - 2 flushes later
  EXPECT_EQ(fresh.Lookup(local), nullptr);
  fresh.Flush(false);  // the non-global epoch wraps to 0: everything is cleared, epochs 1
  EXPECT_EQ(fresh.Lookup(local), nullptr) << "an epoch-1 entry matched after the wrap";
  EXPECT_EQ(fresh.Lookup(global), nullptr);
  // And the global epoch's wrap the same way.
  ASSERT_TRUE(TranslateCached(fresh, s_, *memory_, global, Access::kRead, false).ok);
  fresh.set_epochs_for_test(1, 0xffffffff);
  fresh.Flush(true);
  EXPECT_EQ(fresh.Lookup(global), nullptr) << "a global epoch-1 entry matched after the wrap";
}

// Every flush moves version(), which the interpreter's cached code page depends on.
TEST_F(TlbTest, EveryFlushMovesTheVersion) {
  uint64_t v = tlb_.version();
  tlb_.Flush(false);
  EXPECT_GT(tlb_.version(), v);
  v = tlb_.version();
  tlb_.Flush(true);
  EXPECT_GT(tlb_.version(), v);
  v = tlb_.version();
  tlb_.FlushPage(kPage);
  EXPECT_GT(tlb_.version(), v);
  v = tlb_.version();
  W(Pte(kPage), kPage | kW | kU);  // not present: the fault drops the page
  EXPECT_FALSE(T(kPage).ok);
  EXPECT_GT(tlb_.version(), v);
}

TEST_F(TlbTest, RightsAreCheckedAgainOnEveryHit) {
  // Supervisor page, read-only, execute-disable: cached by a supervisor read.
  W(Pte(kPage), kPage | kP | kNx);
  ASSERT_TRUE(T(kPage).ok);
  ASSERT_NE(tlb_.Lookup(kPage), nullptr);
  Translation t = T(kPage, Access::kRead, /*user=*/true);
  EXPECT_FALSE(t.ok) << "user access to a supervisor page";
  EXPECT_EQ(t.error_code, kPfPresent | kPfUser);
  EXPECT_EQ(tlb_.Lookup(kPage), nullptr) << "a page fault drops the entry (4.10.4.1)";

  ASSERT_TRUE(T(kPage).ok);
  t = T(kPage, Access::kWrite);
  EXPECT_FALSE(t.ok) << "supervisor write to a read-only page with CR0.WP";
  EXPECT_EQ(t.error_code, kPfPresent | kPfWrite);
  ASSERT_TRUE(T(kPage).ok);
  s_.cr0 &= ~kCr0Wp;
  EXPECT_TRUE(T(kPage, Access::kWrite).ok) << "WP clear: supervisor may write";
  s_.cr0 |= kCr0Wp;

  ASSERT_TRUE(T(kPage).ok);
  t = T(kPage, Access::kExecute);
  EXPECT_FALSE(t.ok) << "fetch from an NX page";
  EXPECT_EQ(t.error_code, kPfPresent | kPfFetch);

  // SMEP: a supervisor fetch from a user page cached by a supervisor read.
  W(Pte(kPage), kPage | kP | kU);
  tlb_.FlushPage(kPage);
  ASSERT_TRUE(T(kPage).ok);
  s_.cr4 |= kCr4Smep;
  EXPECT_FALSE(T(kPage, Access::kExecute).ok);
  s_.cr4 &= ~kCr4Smep;
  EXPECT_TRUE(T(kPage, Access::kExecute).ok);
}

TEST_F(TlbTest, FirstWriteAfterAReadWalksAndSetsDirty) {
  W(Pte(kPage), kPage | kP | kW | kU);  // A = D = 0
  ASSERT_TRUE(T(kPage).ok);
  EXPECT_EQ(R(Pte(kPage)) & (kA | kD), kA) << "a read sets A only";
  ASSERT_TRUE(T(kPage, Access::kWrite).ok);
  EXPECT_EQ(R(Pte(kPage)) & (kA | kD), kA | kD) << "the write through a clean entry set D";
  // The entry now knows D is set: a later write hits without walking (so a D cleared by
  // the guest without INVLPG stays clear, as on hardware).
  W(Pte(kPage), kPage | kP | kW | kU | kA);
  ASSERT_TRUE(T(kPage, Access::kWrite).ok);
  EXPECT_EQ(R(Pte(kPage)) & kD, 0u);
  // Same for a 2 MiB page: D lives in the PDE.
  ASSERT_TRUE(T(kLarge + 0x3000).ok);
  EXPECT_EQ(R(kPd + 8) & kD, 0u);
  ASSERT_TRUE(T(kLarge + 0x3000, Access::kWrite).ok);
  EXPECT_EQ(R(kPd + 8) & kD, kD);
}

// The interpreter's hooks: MOV CR3 keeps global entries, INVLPG drops one page. CPL0 code
// reads through the TLB, the test remaps behind it, and each flush shows in what is read.
TEST_F(TlbTest, InterpreterHooksFlushOnMovCr3AndInvlpg) {
  struct Env : CpuEnvironment {
    void Cpuid(uint32_t, uint32_t, uint32_t out[4]) override { out[0] = out[1] = out[2] = 0; }
    uint64_t ReadTsc() override { return 0; }
  } env;
  const uint64_t code = 0x20000, global = kPage, local = kPage + 0x2000;
  W(Pte(global), global | kP | kW | kG);
  ASSERT_TRUE(memory_->WriteObj<uint64_t>(global, 1));
  ASSERT_TRUE(memory_->WriteObj<uint64_t>(local, 2));
  ASSERT_TRUE(memory_->WriteObj<uint64_t>(kOther, 3));
  // mov rax,[rsi]; mov rbx,[rdi]; mov cr3,rcx; mov rax,[rsi]; mov rbx,[rdi]; invlpg [rsi];
  // mov rax,[rsi]
  const std::vector<uint8_t> bytes = {0x48, 0x8b, 0x06, 0x48, 0x8b, 0x1f, 0x0f,
                                      0x22, 0xd9, 0x48, 0x8b, 0x06, 0x48, 0x8b,
                                      0x1f, 0x0f, 0x01, 0x3e, 0x48, 0x8b, 0x06};
  ASSERT_TRUE(memory_->Write(code, bytes));
  s_.rip = code;
  s_.gpr[kRsi] = global;
  s_.gpr[kRdi] = local;
  s_.gpr[kRcx] = kPml4;
  Interpreter cpu(s_, *memory_, env);
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);
  EXPECT_EQ(s_.gpr[kRax], 1u);
  EXPECT_EQ(s_.gpr[kRbx], 2u);
  W(Pte(global), kOther | kP | kW | kG);
  W(Pte(local), kOther | kP | kW);
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);  // mov cr3, rcx
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);
  EXPECT_EQ(s_.gpr[kRax], 1u) << "global entry kept across MOV CR3";
  EXPECT_EQ(s_.gpr[kRbx], 3u) << "non-global entry flushed by MOV CR3";
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);  // invlpg [rsi]
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);
  EXPECT_EQ(s_.gpr[kRax], 3u) << "INVLPG dropped the global entry";
}

// The interpreter keeps the current code page's translation between steps; a flush must end
// it. The code page is remapped behind the TLB; after MOV CR3 the next fetch, on the same
// page, comes from the new frame.
TEST_F(TlbTest, CodePageTranslationIsDroppedByMovCr3AndInvlpg) {
  struct Env : CpuEnvironment {
    void Cpuid(uint32_t, uint32_t, uint32_t out[4]) override { out[0] = out[1] = out[2] = 0; }
    uint64_t ReadTsc() override { return 0; }
  } env;
  const uint64_t code = 0x20000, a = 0x20000, b = 0x30000;
  // Frame a: nop; mov cr3, rcx; mov al, 1; invlpg [rsi]; mov bl, 1.
  // Frame b: the same but mov al, 2 and mov bl, 2.
  ASSERT_TRUE(memory_->Write(
      a, std::vector<uint8_t>{0x90, 0x0f, 0x22, 0xd9, 0xb0, 0x01, 0x0f, 0x01, 0x3e, 0xb3, 0x01}));
  ASSERT_TRUE(memory_->Write(
      b, std::vector<uint8_t>{0x90, 0x0f, 0x22, 0xd9, 0xb0, 0x02, 0x0f, 0x01, 0x3e, 0xb3, 0x02}));
  s_.rip = code;
  s_.gpr[kRcx] = kPml4;
  s_.gpr[kRsi] = code;
  Interpreter cpu(s_, *memory_, env);
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);  // nop, from frame a
  W(Pte(code), b | kP | kW | kA);
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);  // mov cr3: still frame a (cached), then flush
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);
  EXPECT_EQ(s_.gpr[kRax] & 0xff, 2u) << "fetched from the old frame after MOV CR3";
  W(Pte(code), a | kP | kW | kA | kG);     // back to a, now global: MOV CR3 would keep it
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);  // invlpg [rsi], fetched from b
  ASSERT_EQ(cpu.Step(), StepStatus::kOk);
  EXPECT_EQ(s_.gpr[kRbx] & 0xff, 1u) << "fetched from the old frame after INVLPG";
}

}  // namespace
}  // namespace vireo::emu
