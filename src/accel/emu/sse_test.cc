// Unit tests for the x87/SSE state instructions and the SSE availability rules: the FXSAVE
// layout and its FXRSTOR round trip, 16-byte alignment #GP, #NM/#UD from CR0/CR4, MXCSR
// reserved bits. Results against the real CPU are the differential harness's job
// (tests/emu_diff); these pin the cases it cannot reach (CPL0 control-register settings,
// misaligned FXSAVE, which this host's KVM completes).
#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "accel/emu/interpreter.h"

namespace vireo::emu {
namespace {

constexpr uint64_t kCode = 0x10000, kData = 0x20000, kStack = 0x30000;

struct NoEnv : CpuEnvironment {
  void Cpuid(uint32_t, uint32_t, uint32_t out[4]) override {
    out[0] = out[1] = out[2] = out[3] = 0;
  }
  uint64_t ReadTsc() override { return 0; }
};

class SseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RamRange range{0, 1 << 20};
    auto m = GuestMemory::Create({&range, 1}, {});
    ASSERT_TRUE(m);
    memory_.emplace(std::move(*m));
    ASSERT_TRUE(memory_->WriteObj<uint64_t>(0x1000, 0x2000 | 7));
    ASSERT_TRUE(memory_->WriteObj<uint64_t>(0x2000, 0x0 | 0x87));
    state_.cr0 = kCr0Pe | kCr0Pg | kCr0Wp | kCr0Mp | kCr0Ne;
    state_.cr3 = 0x1000;
    state_.cr4 = kCr4Pae | kCr4Osfxsr | kCr4Osxmmexcpt;
    state_.efer = kEferLme | kEferLma | kEferNxe;
    state_.seg[kCs].l = true;
    state_.seg[kCs].dpl = 3;
    state_.seg[kSs].dpl = 3;
    state_.gpr[kRsp] = kStack;
  }

  // Runs `code` (one instruction) from kCode with RSI = `rsi`.
  StepStatus Run(std::vector<uint8_t> code, uint64_t rsi = kData) {
    state_.rip = kCode;
    state_.gpr[kRsi] = rsi;
    EXPECT_TRUE(memory_->Write(kCode, code));
    Interpreter cpu(state_, *memory_, env_);
    StepStatus s = cpu.Step();
    exception_ = cpu.exception();
    return s;
  }

  void ExpectFault(uint8_t vector, std::vector<uint8_t> code, uint64_t rsi = kData) {
    const uint64_t rip = kCode;
    EXPECT_EQ(Run(code, rsi), StepStatus::kException);
    EXPECT_EQ(exception_.vector, vector);
    EXPECT_EQ(state_.rip, rip) << "a fault leaves RIP at the instruction";
  }

  std::optional<GuestMemory> memory_;
  CpuState state_;
  NoEnv env_;
  Exception exception_;
};

TEST_F(SseTest, PowerOnImageHoldsTheResetValues) {
  FxState fx;
  EXPECT_EQ(fx.fcw(), 0x40);
  EXPECT_EQ(fx.mxcsr(), 0x1f80u);
  EXPECT_EQ(fx.Get<uint32_t>(FxState::kMxcsrMaskOffset), FxState::kMxcsrMask);
}

TEST_F(SseTest, FxsaveWritesTheSdmLayoutAndFxrstorRoundTrips) {
  FxState& fx = state_.fx;
  fx.set_fcw(0x27f);
  fx.set_fsw(0x3800);  // TOP = 7, nothing pending
  fx.set_ftw(0x81);
  fx.set_mxcsr(0x9fc0);
  for (int i = 0; i < 16; ++i) std::memset(fx.xmm(i), 0x10 + i, 16);
  for (int i = 0; i < 8; ++i) std::memset(fx.st(i), 0xa0 + i, 10);
  std::vector<uint8_t> canary(512, 0xcc);
  ASSERT_TRUE(memory_->Write(kData, canary));
  ASSERT_EQ(Run({0x48, 0x0f, 0xae, 0x06}), StepStatus::kOk);  // fxsave64 [rsi]
  EXPECT_EQ(state_.rip, kCode + 4);
  std::vector<uint8_t> img(512);
  ASSERT_TRUE(memory_->Read(kData, img));
  auto u16 = [&](size_t o) { return uint16_t(img[o] | img[o + 1] << 8); };
  auto u32 = [&](size_t o) { return uint32_t(u16(o) | u16(o + 2) << 16); };
  EXPECT_EQ(u16(0), 0x27f);      // FCW
  EXPECT_EQ(u16(2), 0x3800);     // FSW
  EXPECT_EQ(img[4], 0x81);       // abridged FTW
  EXPECT_EQ(img[5], 0);          // reserved
  EXPECT_EQ(u32(24), 0x9fc0u);   // MXCSR
  EXPECT_EQ(u32(28), 0x2ffffu);  // MXCSR_MASK
  EXPECT_EQ(img[32], 0xa0);      // ST0 at 32
  EXPECT_EQ(img[32 + 16 * 7 + 9], 0xa7);
  EXPECT_EQ(img[160], 0x10);                 // XMM0 at 160
  EXPECT_EQ(img[160 + 16 * 15 + 15], 0x1f);  // XMM15 ends at 415
  EXPECT_EQ(img[416], 0xcc) << "bytes 416-511 are left alone";
  EXPECT_EQ(img[511], 0xcc);

  // Change the image in memory and load it back: every field lands in the state.
  img[0] = 0x7f, img[1] = 0x03;    // FCW 0x37f
  img[24] = 0x80, img[25] = 0x1f;  // MXCSR 0x1f80
  img[160 + 16 * 9] = 0x99;        // XMM9 byte 0
  ASSERT_TRUE(memory_->Write(kData + 0x200, img));
  FxState before = state_.fx;
  ASSERT_EQ(Run({0x48, 0x0f, 0xae, 0x0e}, kData + 0x200), StepStatus::kOk);  // fxrstor64
  EXPECT_EQ(state_.fx.fcw(), 0x37f);
  EXPECT_EQ(state_.fx.mxcsr(), 0x1f80u);
  EXPECT_EQ(state_.fx.xmm(9)[0], 0x99);
  EXPECT_EQ(state_.fx.xmm(9)[1], before.xmm(9)[1]);
  EXPECT_EQ(std::memcmp(state_.fx.st(3), before.st(3), 10), 0);
}

TEST_F(SseTest, OutsideSixtyFourBitModeFxsaveKeepsEightXmmRegisters) {
  // Compatibility mode (CS.L = 0, D = 1): XMM8-15 are not part of the image.
  for (Seg sg : {kCs, kDs, kSs}) {
    accel::Segment& s = state_.seg[sg];
    s.present = true, s.s = true, s.dpl = 3, s.db = true, s.g = true, s.l = false;
    s.limit = 0xffffffff;
    s.type = sg == kCs ? 0xb : 0x3;
  }
  for (int i = 0; i < 16; ++i) std::memset(state_.fx.xmm(i), 0x10 + i, 16);
  std::vector<uint8_t> canary(512, 0xcc);
  ASSERT_TRUE(memory_->Write(kData, canary));
  ASSERT_EQ(Run({0x0f, 0xae, 0x06}), StepStatus::kOk);  // fxsave [esi]
  std::vector<uint8_t> img(512);
  ASSERT_TRUE(memory_->Read(kData, img));
  EXPECT_EQ(img[160 + 16 * 7 + 15], 0x17);  // XMM7 ends at 287
  EXPECT_EQ(img[288], 0xcc) << "XMM8-15 are not saved outside 64-bit mode";
  // FXRSTOR there leaves XMM8-15 alone.
  ASSERT_TRUE(memory_->Write(kData, std::vector<uint8_t>(512, 0)));
  ASSERT_EQ(Run({0x0f, 0xae, 0x0e}), StepStatus::kOk);  // fxrstor [esi]
  EXPECT_EQ(state_.fx.xmm(7)[0], 0);
  EXPECT_EQ(state_.fx.xmm(8)[0], 0x18);
}

TEST_F(SseTest, MisalignedFxsaveFxrstorAndAlignedMovesRaiseGp) {
  for (uint64_t off : {4, 8, 12}) {
    ExpectFault(kGeneralProtection, {0x0f, 0xae, 0x06}, kData + off);        // fxsave
    ExpectFault(kGeneralProtection, {0x48, 0x0f, 0xae, 0x0e}, kData + off);  // fxrstor64
    ExpectFault(kGeneralProtection, {0x0f, 0x28, 0x06}, kData + off);        // movaps
    ExpectFault(kGeneralProtection, {0x66, 0x0f, 0x7f, 0x06}, kData + off);  // movdqa store
    ExpectFault(kGeneralProtection, {0x66, 0x0f, 0xef, 0x06}, kData + off);  // pxor m128
    EXPECT_EQ(Run({0xf3, 0x0f, 0x6f, 0x06}, kData + off), StepStatus::kOk);  // movdqu
    EXPECT_EQ(Run({0x66, 0x0f, 0xd6, 0x06}, kData + off), StepStatus::kOk);  // movq m64
  }
  // AMD misaligned-SSE mode: computational m128 operands may be misaligned, MOVAPS not.
  state_.fx.set_mxcsr(state_.fx.mxcsr() | FxState::kMxcsrMm);
  EXPECT_EQ(Run({0x66, 0x0f, 0xef, 0x06}, kData + 4), StepStatus::kOk);
  ExpectFault(kGeneralProtection, {0x0f, 0x28, 0x06}, kData + 4);
}

TEST_F(SseTest, ControlRegistersGateSseAndX87) {
  const std::vector<uint8_t> pxor{0x66, 0x0f, 0xef, 0xc1}, fninit{0xdb, 0xe3},
      fxsave{0x0f, 0xae, 0x06}, emms{0x0f, 0x77}, fwait{0x9b};
  EXPECT_EQ(Run(pxor), StepStatus::kOk);
  state_.cr0 |= kCr0Ts;  // lazy FPU switch pending: #NM for SSE, x87, FXSAVE, FWAIT (MP=1)
  ExpectFault(kDeviceNotAvailable, pxor);
  ExpectFault(kDeviceNotAvailable, fninit);
  ExpectFault(kDeviceNotAvailable, fxsave);
  ExpectFault(kDeviceNotAvailable, emms);
  ExpectFault(kDeviceNotAvailable, fwait);
  state_.cr0 &= ~kCr0Mp;  // FWAIT waits for TS only with MP
  EXPECT_EQ(Run(fwait), StepStatus::kOk);
  state_.cr0 = (state_.cr0 & ~kCr0Ts) | kCr0Em;  // no FPU: #UD for SSE/FXSAVE/EMMS, #NM for x87
  ExpectFault(kInvalidOpcode, pxor);
  ExpectFault(kInvalidOpcode, fxsave);
  ExpectFault(kInvalidOpcode, emms);
  ExpectFault(kDeviceNotAvailable, fninit);
  state_.cr0 &= ~kCr0Em;
  state_.cr4 &= ~kCr4Osfxsr;  // OS without FXSAVE support: SSE is #UD, x87 still runs
  ExpectFault(kInvalidOpcode, pxor);
  ExpectFault(kInvalidOpcode, {0x0f, 0xae, 0x16});  // ldmxcsr
  EXPECT_EQ(Run(fninit), StepStatus::kOk);
}

TEST_F(SseTest, LdmxcsrRejectsReservedBitsAndStmxcsrStores) {
  ASSERT_TRUE(memory_->WriteObj<uint32_t>(kData, 0x40000));  // bit 18: reserved
  ExpectFault(kGeneralProtection, {0x0f, 0xae, 0x16});
  EXPECT_EQ(state_.fx.mxcsr(), 0x1f80u) << "a faulting LDMXCSR changes nothing";
  ASSERT_TRUE(memory_->WriteObj<uint32_t>(kData, 0x2ffff));  // every implemented bit
  ASSERT_EQ(Run({0x0f, 0xae, 0x16}), StepStatus::kOk);
  EXPECT_EQ(state_.fx.mxcsr(), 0x2ffffu);
  ASSERT_EQ(Run({0x0f, 0xae, 0x1e}, kData + 0x40), StepStatus::kOk);  // stmxcsr
  EXPECT_EQ(memory_->ReadObj<uint32_t>(kData + 0x40), 0x2ffffu);
  // FXRSTOR checks the image's MXCSR the same way, before loading anything.
  std::vector<uint8_t> img(512, 0);
  img[26] = 0x10;  // MXCSR bit 20
  img[0] = 0x12;   // an FCW that must not load
  ASSERT_TRUE(memory_->Write(kData + 0x100, img));
  ExpectFault(kGeneralProtection, {0x0f, 0xae, 0x0e}, kData + 0x100);
  EXPECT_EQ(state_.fx.fcw(), 0x40);
}

TEST_F(SseTest, PendingUnmaskedX87ExceptionRaisesMfOnWaitingInstructions) {
  ASSERT_EQ(Run({0xdb, 0xe3}), StepStatus::kOk);  // fninit: FCW 0x37f
  EXPECT_EQ(state_.fx.fcw(), 0x37f);
  state_.fx.set_fsw(0x0001);  // IE flagged, masked: not pending
  EXPECT_EQ(Run({0x9b}), StepStatus::kOk);
  ASSERT_TRUE(memory_->WriteObj<uint16_t>(kData, 0x37e));  // fldcw: unmask IM
  ASSERT_EQ(Run({0xd9, 0x2e}), StepStatus::kOk);
  EXPECT_EQ(state_.fx.fsw(), 0x8081) << "ES and B follow the newly unmasked IE";
  ExpectFault(kMathFault, {0x9b});                // fwait
  ExpectFault(kMathFault, {0x0f, 0x77});          // emms
  ASSERT_EQ(Run({0xdf, 0xe0}), StepStatus::kOk);  // fnstsw ax: no-wait form
  EXPECT_EQ(state_.gpr[kRax] & 0xffff, 0x8081u);
  ASSERT_EQ(Run({0xdb, 0xe2}), StepStatus::kOk);  // fnclex
  EXPECT_EQ(state_.fx.fsw(), 0);
  EXPECT_EQ(Run({0x9b}), StepStatus::kOk);
}

void SetSd(FxState& fx, int reg, double v) { std::memcpy(fx.xmm(reg), &v, 8); }
double GetSd(const FxState& fx, int reg) {
  double v;
  std::memcpy(&v, fx.xmm(reg), 8);
  return v;
}

TEST_F(SseTest, ScalarDoubleArithmeticSetsFlagsAndRaisesUnmaskedExceptions) {
  FxState& fx = state_.fx;
  SetSd(fx, 0, 1.5);
  SetSd(fx, 1, 2.25);
  ASSERT_EQ(Run({0xf2, 0x0f, 0x58, 0xc1}), StepStatus::kOk);  // addsd xmm0, xmm1
  EXPECT_EQ(GetSd(fx, 0), 3.75);
  EXPECT_EQ(fx.mxcsr(), 0x1f80u) << "exact: no flag";
  SetSd(fx, 1, 0.0);
  ASSERT_EQ(Run({0xf2, 0x0f, 0x5e, 0xc1}), StepStatus::kOk);  // divsd xmm0, xmm1 (ZM masked)
  EXPECT_EQ(GetSd(fx, 0), std::numeric_limits<double>::infinity());
  EXPECT_EQ(fx.mxcsr(), 0x1f84u) << "ZE";
  SetSd(fx, 0, 3.0);
  fx.set_mxcsr(0x1f80 & ~(1u << 9));  // unmask divide-by-zero
  ExpectFault(kSimdFault, {0xf2, 0x0f, 0x5e, 0xc1});
  EXPECT_EQ(GetSd(fx, 0), 3.0) << "the destination is not written";
  EXPECT_EQ(fx.mxcsr() & 0x3f, 0x4u);
  state_.cr4 &= ~kCr4Osxmmexcpt;  // no #XM handler: #UD (SDM Vol. 3 13.1.5)
  ExpectFault(kInvalidOpcode, {0xf2, 0x0f, 0x5e, 0xc1});
  // Rounding follows MXCSR.RC: 1/3 rounded up and down differ in the last bit.
  state_.cr4 |= kCr4Osxmmexcpt;
  SetSd(fx, 1, 3.0);
  fx.set_mxcsr(0x1f80 | 0x2000);  // round down
  SetSd(fx, 0, 1.0);
  ASSERT_EQ(Run({0xf2, 0x0f, 0x5e, 0xc1}), StepStatus::kOk);
  const double down = GetSd(fx, 0);
  EXPECT_EQ(fx.mxcsr() & 0x3f, 0x20u) << "PE";
  fx.set_mxcsr(0x1f80 | 0x4000);  // round up
  SetSd(fx, 0, 1.0);
  ASSERT_EQ(Run({0xf2, 0x0f, 0x5e, 0xc1}), StepStatus::kOk);
  EXPECT_LT(down, GetSd(fx, 0));
}

TEST_F(SseTest, ComisdSetsZfPfCfAndConversionsSaturateToIndefinite) {
  FxState& fx = state_.fx;
  SetSd(fx, 0, 1.0);
  SetSd(fx, 1, 2.0);
  state_.flags.Set(0x202 | kOf | kSf | kAf);
  ASSERT_EQ(Run({0x66, 0x0f, 0x2f, 0xc1}), StepStatus::kOk);  // comisd xmm0, xmm1: less
  EXPECT_EQ(state_.flags.Get() & kArithFlags, kCf) << "OF SF AF cleared";
  SetSd(fx, 1, std::numeric_limits<double>::quiet_NaN());
  ASSERT_EQ(Run({0x66, 0x0f, 0x2e, 0xc1}), StepStatus::kOk);  // ucomisd: unordered, quiet
  EXPECT_EQ(state_.flags.Get() & kArithFlags, kZf | kPf | kCf);
  EXPECT_EQ(fx.mxcsr() & 0x3f, 0u) << "UCOMISD: a QNaN is not invalid";
  ASSERT_EQ(Run({0x66, 0x0f, 0x2f, 0xc1}), StepStatus::kOk);  // comisd: invalid
  EXPECT_EQ(fx.mxcsr() & 0x3f, 1u);
  SetSd(fx, 1, 1e30);
  ASSERT_EQ(Run({0xf2, 0x48, 0x0f, 0x2c, 0xc1}), StepStatus::kOk);  // cvttsd2si rax, xmm1
  EXPECT_EQ(state_.gpr[kRax], 0x8000000000000000ull);
  state_.gpr[kRbx] = static_cast<uint64_t>(-7);
  ASSERT_EQ(Run({0xf2, 0x48, 0x0f, 0x2a, 0xd3}), StepStatus::kOk);  // cvtsi2sd xmm2, rbx
  EXPECT_EQ(GetSd(fx, 2), -7.0);
}

// x87 arithmetic runs on the host's x87 unit (insn_x87.cc): state that did not come from
// the guest's own instructions (a restored snapshot) must not make the host fault.
TEST_F(SseTest, X87OnTheHostSurvivesForeignStateAndReportsTheGuestsPointers) {
  // MXCSR bits no CPU implements: the host's FXRSTOR would #GP; the guest's value is kept.
  state_.fx.set_mxcsr(0xffffffff);
  ASSERT_EQ(Run({0xd9, 0xe8}), StepStatus::kOk);  // fld1
  EXPECT_EQ(state_.fx.mxcsr(), 0xffffffffu);
  EXPECT_EQ(state_.fx.ftw(), 0x80) << "FLD1 pushed into R7";
  EXPECT_EQ(state_.fx.Get<uint64_t>(FxState::kFip), kCode);
  EXPECT_EQ(state_.fx.Get<uint16_t>(FxState::kFop), 0x1e8);
  // An unmasked flag with ES clear: #MF for the guest, never a waiting instruction on the host.
  state_.fx.set_mxcsr(0x1f80);
  state_.fx.set_fcw(0x37e);  // IE unmasked
  state_.fx.set_fsw(0x0001);
  ExpectFault(kMathFault, {0xd9, 0xe8});
  // A store the CPU suppresses (unmasked invalid operation: FST of an empty register) leaves
  // memory as it was; FNSTENV (no wait) still stores the environment.
  state_.fx.set_fsw(0);
  state_.fx.set_ftw(0);
  ASSERT_TRUE(memory_->WriteObj<uint64_t>(kData, 0x1122334455667788));
  ASSERT_EQ(Run({0xdd, 0x16}), StepStatus::kOk);  // fst qword [rsi]
  EXPECT_EQ(memory_->ReadObj<uint64_t>(kData), 0x1122334455667788u);
  EXPECT_EQ(state_.fx.Get<uint64_t>(FxState::kFdp), kData);
  EXPECT_NE(state_.fx.fsw() & 0x80, 0) << "ES: the unmasked #IA is pending";
  ASSERT_EQ(Run({0xd9, 0x36}), StepStatus::kOk);  // fnstenv [rsi]
  EXPECT_EQ(memory_->ReadObj<uint16_t>(kData), 0x37eu) << "the environment's FCW";
  EXPECT_EQ(state_.fx.fcw() & 0x3f, 0x3f) << "FNSTENV masks every exception afterwards";
}

}  // namespace
}  // namespace vireo::emu
