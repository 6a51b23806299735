// Event delivery outside 64-bit mode: 32-bit protected-mode IDT gates (privilege change
// through the 32-bit TSS's SS0:ESP0, error codes, trap vs interrupt gates, IRETD back to
// CPL3), #DF and triple fault, and compatibility mode going through the IA-32e IDT.
// Expected frames from SDM Vol. 3 6.12.1 (Figure 6-4) and 6.14.
#include "accel/emu/modes_testing.h"

namespace vireo::emu::testing {
namespace {

using ErrorPair = std::pair<int, int64_t>;

class LegacyExceptionTest : public ModesTest {
 protected:
  void SetUp() override {
    ModesTest::SetUp();
    Flat32();
    s_.idtr = {kIdt, 0x7ff};
    // A 32-bit TSS: ESP0 at +4, SS0 at +8.
    W32(kTss + 4, 0x9000);
    W32(kTss + 8, kData);
    s_.tr.base = kTss;
    s_.tr.limit = 0x67;
    s_.tr.selector = kTssSel;
    s_.tr.type = 11;  // busy 32-bit TSS
    s_.tr.present = true;
    Cpu().set_deliver_exceptions(true);
  }
  // An 8-byte 32-bit gate to kCode32:target; type 0xe interrupt, 0xf trap.
  void Gate32(int vector, uint32_t target, int dpl, unsigned type = 0xe) {
    W64(kIdt + vector * 8, (target & 0xffff) | uint64_t{kCode32} << 16 |
                               uint64_t{0x80u | (unsigned(dpl) << 5) | type} << 40 |
                               uint64_t{target >> 16} << 48);
  }
  void User() {
    s_.seg[kCs] = SegmentFrom(s_, kUserCode32 | 3, kDescUserCode32);
    for (Seg seg : {kEs, kSs, kDs, kFs, kGs})
      s_.seg[seg] = SegmentFrom(s_, kUserData | 3, kDescUserData);
  }
};

TEST_F(LegacyExceptionTest, IntFromCpl3SwitchesToEsp0AndIretdReturns) {
  Gate32(0x80, 0x7100, 3);
  User();
  s_.flags.Set(kIf | 2);
  s_.gpr[kRsp] = 0x6000;
  s_.rip = 0x7000;
  Code(0x7000, {0xcd, 0x80, 0x90});  // int 0x80
  Code(0x7100, {0xcf});              // iretd
  const uint64_t flags = s_.flags.Get();
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, 0x7100u);
  EXPECT_EQ(s_.cpl(), 0);
  EXPECT_EQ(s_.seg[kCs].selector, kCode32);
  EXPECT_EQ(s_.seg[kSs].selector, kData);
  EXPECT_FALSE(s_.flags.ifl());  // interrupt gate
  ASSERT_EQ(s_.gpr[kRsp], 0x9000u - 20);
  EXPECT_EQ(R32(0x9000 - 20), 0x7002u);  // EIP after INT
  EXPECT_EQ(R32(0x9000 - 16), kUserCode32 | 3u);
  EXPECT_EQ(R32(0x9000 - 12), flags);
  EXPECT_EQ(R32(0x9000 - 8), 0x6000u);  // old ESP, old SS
  EXPECT_EQ(R32(0x9000 - 4), kUserData | 3u);
  ASSERT_EQ(Step(), StepStatus::kOk);  // iretd to the outer level pops SS:ESP too
  EXPECT_EQ(s_.rip, 0x7002u);
  EXPECT_EQ(s_.cpl(), 3);
  EXPECT_EQ(s_.seg[kSs].selector, kUserData | 3);
  EXPECT_EQ(s_.seg[kDs].selector, kUserData | 3);  // DPL3 data stays usable
  EXPECT_EQ(s_.gpr[kRsp], 0x6000u);
  EXPECT_TRUE(s_.flags.ifl());
}

TEST_F(LegacyExceptionTest, GpErrorCodeThroughTrapGateOnTheSameStack) {
  Gate32(kGeneralProtection, 0x7100, 0, 0xf);
  s_.flags.Set(kIf | 2);
  s_.gpr[kRsp] = 0x8000;
  s_.gpr[kRax] = 0x100;  // past the GDT limit
  s_.rip = 0x7000;
  Code(0x7000, {0x8e, 0xd8});  // mov ds, ax
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, 0x7100u);
  ASSERT_EQ(s_.gpr[kRsp], 0x8000u - 16);
  EXPECT_EQ(R32(0x8000 - 16), 0x100u);   // error code: the selector
  EXPECT_EQ(R32(0x8000 - 12), 0x7000u);  // a fault: EIP of the MOV
  EXPECT_EQ(R32(0x8000 - 8), kCode32);
  EXPECT_TRUE(s_.flags.ifl());  // trap gate
}

TEST_F(LegacyExceptionTest, IntThroughDpl0GateFromCpl3IsGpWithIdtErrorCode) {
  Gate32(0x81, 0x7100, 0);
  Gate32(kGeneralProtection, 0x7200, 0);
  User();
  s_.gpr[kRsp] = 0x6000;
  s_.rip = 0x7000;
  Code(0x7000, {0xcd, 0x81});
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, 0x7200u);
  EXPECT_EQ(s_.gpr[kRsp], 0x9000u - 24);
  EXPECT_EQ(R32(0x9000 - 24), 0x81u * 8 + 2);  // IDT bit, vector, not EXT
}

TEST_F(LegacyExceptionTest, NoGatesIsDoubleFaultThenTripleFault) {
  s_.idtr = {kIdt, 0x7};  // only vector 0 fits
  s_.gpr[kRax] = 0x100;
  s_.rip = 0x7000;
  Code(0x7000, {0x8e, 0xd8});
  EXPECT_EQ(Step(), StepStatus::kShutdown);
}

TEST_F(LegacyExceptionTest, TaskGateIsReportedNotEmulated) {
  W64(kIdt + 0x80 * 8, uint64_t{kTssSel} << 16 | uint64_t{0xe5} << 40);
  s_.rip = 0x7000;
  Code(0x7000, {0xcd, 0x80});
  EXPECT_EQ(Step(), StepStatus::kUnimplemented);
}

TEST_F(LegacyExceptionTest, RealModeIntGoesThroughTheIvtAndIretReturns) {
  Real(0x0700);
  s_.idtr = {0, 0x3ff};
  s_.seg[kSs] = RealModeSegment(0x0800, false);
  s_.gpr[kRsp] = 0x100;
  s_.flags.Set(kIf | 2);
  W32(0x10 * 4, 0x0900'0020);  // INT 10h -> 0900:0020
  s_.rip = 0;
  Code(0x7000, {0xcd, 0x10, 0x90});
  Code(0x9020, {0xcf});  // iret
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.seg[kCs].selector, 0x0900);
  EXPECT_EQ(s_.seg[kCs].base, 0x9000u);
  EXPECT_EQ(s_.rip, 0x20u);
  EXPECT_FALSE(s_.flags.ifl());
  ASSERT_EQ(s_.gpr[kRsp], 0x100u - 6);
  EXPECT_EQ(R16(0x8000 + 0x100 - 6), 2u);  // IP, CS, FLAGS
  EXPECT_EQ(R16(0x8000 + 0x100 - 4), 0x0700u);
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.seg[kCs].base, 0x7000u);
  EXPECT_EQ(s_.rip, 2u);
  EXPECT_TRUE(s_.flags.ifl());
  EXPECT_EQ(s_.gpr[kRsp], 0x100u);
}

TEST_F(LegacyExceptionTest, CompatibilityModeUsesTheIa32eIdtAndIretqReturns) {
  W64(0x4000, 0x5000 | 3);
  W64(0x5000, 0x6000 | 3);
  W64(0x6000, 0x83);
  s_.cr0 |= kCr0Pg;
  s_.cr3 = 0x4000;
  s_.cr4 = kCr4Pae;
  s_.efer = kEferLme | kEferLma;
  s_.idtr = {kIdt, 0xfff};
  // A 16-byte gate to 64-bit code.
  W64(kIdt + 0x80 * 16, 0x7100 | uint64_t{kCode64} << 16 | uint64_t{0xee} << 40);
  W64(kIdt + 0x80 * 16 + 8, 0);
  s_.gpr[kRsp] = 0x9004;
  s_.rip = 0x7000;
  Code(0x7000, {0xcd, 0x80});
  Code(0x7100, {0x48, 0xcf});  // iretq
  ASSERT_EQ(s_.mode(), CpuMode::kProtected32);
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.mode(), CpuMode::kLong64);
  EXPECT_EQ(s_.rip, 0x7100u);
  ASSERT_EQ(s_.gpr[kRsp], 0x9000u - 40);  // aligned to 16, then five quadwords
  EXPECT_EQ(R64(0x9000 - 40), 0x7002u);
  EXPECT_EQ(R64(0x9000 - 32), kCode32);
  EXPECT_EQ(R64(0x9000 - 16), 0x9004u);
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.mode(), CpuMode::kProtected32);
  EXPECT_EQ(s_.rip, 0x7002u);
  EXPECT_EQ(s_.gpr[kRsp], 0x9004u);
  EXPECT_EQ(s_.seg[kCs].selector, kCode32);
}

TEST_F(LegacyExceptionTest, BoundOutsideItsRangeIsBrWithTheInstructionsEip) {
  Gate32(kBoundRange, 0x7100, 0);
  s_.gpr[kRsp] = 0x6000;
  s_.rip = 0x7000;
  W32(0x5000, 10);  // lower bound
  W32(0x5004, 20);  // upper bound
  // mov eax, 15; bound eax, [0x5000]; mov eax, 25; bound eax, [0x5000]
  Code(0x7000, {0xb8, 0x0f, 0, 0, 0, 0x62, 0x05, 0x00, 0x50, 0, 0,
                0xb8, 0x19, 0, 0, 0, 0x62, 0x05, 0x00, 0x50, 0, 0});
  for (int i = 0; i < 3; ++i) ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, 0x7010u) << "15 lies within [10, 20]";
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, 0x7100u);
  EXPECT_EQ(R32(static_cast<uint32_t>(s_.gpr[kRsp])), 0x7010u) << "a fault: EIP of the BOUND";
}

}  // namespace
}  // namespace vireo::emu::testing
