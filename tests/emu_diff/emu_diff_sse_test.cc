// Differential harness, x87 control and SSE groups: every form against the real CPU with
// XMM lanes of edge values (integer and floating point), random MXCSR, and prefixes; see
// harness.h for the harness and docs/emulator.md for the results.
#include <cstdlib>
#include <cstring>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "accel/emu/decoder.h"
#include "accel/emu/insn_groups.h"
#include "harness.h"

namespace vireo::emu_diff {
namespace {

// SSE: each form with register operands (low and REX-extended registers, source = dest) and
// memory operands ([rsi] is 8-byte aligned, so 16-byte forms meet both alignments; [rsi+1]
// never is), from edge-value XMM lanes and random MXCSR flags.
std::vector<uint8_t> SseOp(uint8_t prefix, std::vector<uint8_t> body, uint8_t rex = 0) {
  std::vector<uint8_t> out;
  if (prefix) out.push_back(prefix);
  if (rex) out.push_back(rex);
  out.push_back(0x0f);
  out.insert(out.end(), body.begin(), body.end());
  return out;
}

// The ModRM forms each SSE case runs with: xmm0,xmm1 / xmm8,xmm9 (REX.RB) / xmm2,xmm2 /
// xmm0,[rsi] / xmm11,[rdi+1] (REX.R).
struct Form {
  uint8_t modrm, rex;
  bool memory;
};
constexpr Form kForms[] = {
    {0xc1, 0, false}, {0xc1, 0x45, false}, {0xd2, 0, false}, {0x06, 0, true}, {0x5f, 0x44, true}};

void SseForms(Harness& h, uint8_t prefix, uint8_t op, bool reg_ok, bool mem_ok, int n,
              std::optional<uint8_t> imm = std::nullopt) {
  for (const Form& f : kForms) {
    if (f.memory ? !mem_ok : !reg_ok) continue;
    std::vector<uint8_t> body{op, f.modrm};
    if (f.modrm == 0x5f) body.push_back(1);  // disp8 = 1
    if (imm) body.push_back(*imm);
    for (int i = 0; i < n; ++i) h.Check(SseOp(prefix, body, f.rex), h.StartState());
  }
}

TEST_F(EmuDiff, SseMoves) {
  for (uint8_t p : {0x00, 0x66, 0xf3, 0xf2}) {
    SseForms(h_, p, 0x10, true, true, 4);  // movups/movupd/movss/movsd load
    SseForms(h_, p, 0x11, true, true, 4);  // ... store
    SseForms(h_, p, 0x12, true, true, 4);  // movlps/movhlps/movlpd/movsldup/movddup
    // F2 0F 16 is not defined (this CPU runs it; the emulator reports it not emulated).
    if (p != 0xf2) SseForms(h_, p, 0x16, true, true, 4);  // movhps/movlhps/movhpd/movshdup
  }
  for (uint8_t p : {0x00, 0x66}) {
    SseForms(h_, p, 0x13, true, true, 4);  // movlps/movlpd store (reg form #UD)
    SseForms(h_, p, 0x17, true, true, 4);
    SseForms(h_, p, 0x28, true, true, 4);  // movaps/movapd
    SseForms(h_, p, 0x29, true, true, 4);
    SseForms(h_, p, 0x2b, true, true, 4);  // movntps/movntpd
    SseForms(h_, p, 0x50, true, true, 4);  // movmskps/pd (memory form #UD)
  }
  for (uint8_t p : {0x66, 0xf3}) {
    SseForms(h_, p, 0x6f, true, true, 4);  // movdqa/movdqu
    SseForms(h_, p, 0x7f, true, true, 4);
    SseForms(h_, p, 0x7e, true, true, 4);  // movd r/m32, xmm / movq xmm, xmm/m64
  }
  for (uint8_t rex : {0x00, 0x48, 0x4c}) {  // movd/movq with and without REX.W
    for (uint8_t modrm : {0xc3, 0x06}) {
      Many(SseOp(0x66, {0x6e, modrm}, rex), 4);
      Many(SseOp(0x66, {0x7e, modrm}, rex), 4);
    }
  }
  SseForms(h_, 0x66, 0xd6, true, true, 4);   // movq xmm/m64, xmm
  SseForms(h_, 0x66, 0xd7, true, true, 4);   // pmovmskb
  SseForms(h_, 0x66, 0xe7, false, true, 4);  // movntdq (register form: see insn_sse.cc)
  Many(SseOp(0, {0xc3, 0x1e}), 4);           // movnti [rsi], ebx
  Many(SseOp(0, {0xc3, 0x1e}, 0x48), 4);
  for (uint8_t imm : {0, 1, 5, 7, 0xff}) {
    SseForms(h_, 0x66, 0xc4, false, true, 2, imm);  // pinsrw xmm, m16
    Many(SseOp(0x66, {0xc4, 0xc3, imm}), 2);        // pinsrw xmm0, ebx
    SseForms(h_, 0x66, 0xc5, true, true, 2, imm);   // pextrw
  }
}

TEST_F(EmuDiff, SseLogicShufflesAndPackedInteger) {
  for (uint8_t p : {0x00, 0x66}) {
    for (uint8_t op : {0x14, 0x15, 0x54, 0x55, 0x56, 0x57}) SseForms(h_, p, op, true, true, 3);
    for (uint8_t imm : {0x00, 0x1b, 0xe4, 0x4e, 0xff, 0x02})
      SseForms(h_, p, 0xc6, true, true, 1, imm);  // shufps/shufpd
  }
  for (uint8_t p : {0x66, 0xf2, 0xf3}) {
    for (uint8_t imm : {0x00, 0x1b, 0xe4, 0x4e, 0xff, 0x39})
      SseForms(h_, p, 0x70, true, true, 1, imm);  // pshufd/pshuflw/pshufhw
  }
  std::vector<uint8_t> ops;
  for (int op = 0x60; op <= 0x6d; ++op) ops.push_back(static_cast<uint8_t>(op));
  for (int op = 0x74; op <= 0x76; ++op) ops.push_back(static_cast<uint8_t>(op));
  for (int op = 0xd1; op <= 0xfe; ++op) {
    if (op == 0xd6 || op == 0xd7 || op == 0xe6 || op == 0xe7 || op == 0xf0 || op == 0xf7 ||
        op == 0xd0)
      continue;
    ops.push_back(static_cast<uint8_t>(op));
  }
  for (uint8_t op : ops) SseForms(h_, 0x66, op, true, true, 3);
  // Shifts by an XMM count: small counts in xmm1's low qword too (edge lanes are mostly huge).
  for (uint8_t op : {0xd1, 0xd2, 0xd3, 0xe1, 0xe2, 0xf1, 0xf2, 0xf3}) {
    for (uint64_t count : {0, 1, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65}) {
      CaseState s = h_.StartState();
      std::memcpy(s.fx.xmm(1), &count, 8);
      h_.Check(SseOp(0x66, {op, 0xc1}), s);
    }
  }
}

TEST_F(EmuDiff, SseShiftImmediates) {
  const uint8_t counts[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255};
  const std::pair<uint8_t, int> groups[] = {{0x71, 2}, {0x71, 4}, {0x71, 6}, {0x72, 2}, {0x72, 4},
                                            {0x72, 6}, {0x73, 2}, {0x73, 3}, {0x73, 6}, {0x73, 7}};
  for (auto [op, digit] : groups) {
    for (uint8_t c : counts) {
      Many(SseOp(0x66, {op, uint8_t(0xc0 | digit << 3 | 1), c}), 1);
      Many(SseOp(0x66, {op, uint8_t(0xc0 | digit << 3 | 1), c}, 0x41), 1);  // xmm9
    }
  }
  for (int digit : {0, 1, 3, 5, 7}) Many(SseOp(0x66, {0x71, uint8_t(0xc1 | digit << 3), 3}), 2);
  Many(SseOp(0x66, {0x72, 0x06, 3}), 2);  // memory form: #UD
}

TEST_F(EmuDiff, X87ControlMxcsrAndFxsave) {
  Many({0xdb, 0xe3}, 6);        // fninit
  Many({0xdb, 0xe2}, 6);        // fnclex
  Many({0xd9, 0x3e}, 6);        // fnstcw [rsi]
  Many({0xdd, 0x3e}, 6);        // fnstsw [rsi]
  Many({0xdf, 0xe0}, 6);        // fnstsw ax
  Many({0xd9, 0x2e}, 6);        // fldcw [rsi] (random control words)
  Many({0x9b}, 6);              // fwait
  Many({0x0f, 0x77}, 6);        // emms
  Many({0x0f, 0xae, 0x1e}, 6);  // stmxcsr [rsi]
  Many({0x0f, 0xae, 0x16}, 6);  // ldmxcsr [rsi]: random, mostly reserved bits → #GP
  Many({0x0f, 0xae, 0x3e}, 6);  // clflush [rsi]
  Many({0x0f, 0xae, 0xf0}, 2);  // mfence
  Many({0x0f, 0x18, 0x0e}, 2);  // prefetcht0 [rsi]
  // FSW with exception flags, pending (ES) or not, under random masks: FWAIT/EMMS #MF,
  // FNCLEX, FNSTSW, FLDCW's effect on ES.
  for (int i = 0; i < 40; ++i) {
    for (auto code : std::vector<std::vector<uint8_t>>{
             {0x9b}, {0x0f, 0x77}, {0xdb, 0xe2}, {0xdf, 0xe0}, {0xd9, 0x2e}}) {
      CaseState s = h_.StartState();
      s.fx.set_fcw(static_cast<uint16_t>(0x40 | (h_.rng() & 0x0f3f)));
      s.fx.set_fsw(static_cast<uint16_t>(h_.rng() & 0x7fff));
      s.fx.set_ftw(static_cast<uint8_t>(h_.rng()));
      emu::UpdateX87Summary(s.fx);  // ES/B as this CPU derives them when the state loads
      h_.Check(code, s);
    }
  }
  // LDMXCSR with valid values: every defined bit, the MM bit (17).
  for (int i = 0; i < 40; ++i) {
    auto scratch = h_.Scratch();
    CaseState s = h_.StartState();
    const uint32_t v = static_cast<uint32_t>(h_.rng()) & (i % 2 ? 0xffff : 0x2ffff);
    std::memcpy(&scratch[s.gpr[emu::kRsi] - kScratchAddr], &v, 4);
    h_.Check({0x0f, 0xae, 0x16}, s, scratch);
  }
  // FXSAVE / FXSAVE64 to an aligned [rsi], with x87 state loaded. Misaligned operands are
  // not compared: this host's KVM (kvm_pvm) completes a misaligned FXSAVE/FXRSTOR (its
  // instruction emulator skips the check), while the CPU itself raises #GP (checked natively
  // on this host: SIGSEGV for offsets 4, 8, 12); the unit tests check the #GP.
  for (uint8_t rex : {0x00, 0x48}) {
    for (int i = 0; i < 20; ++i) {
      CaseState s = h_.StartState();
      s.fx.set_fsw(static_cast<uint16_t>(h_.rng() & 0x3f7f));
      s.fx.set_ftw(static_cast<uint8_t>(h_.rng()));
      if (i % 2) {  // unmasked exceptions pending (ES): FXSAVE stores FOP/FIP/FDP then
        s.fx.set_fcw(static_cast<uint16_t>(0x40 | (h_.rng() & 0x0f3f)));
        s.fx.Put<uint16_t>(emu::FxState::kFop, static_cast<uint16_t>(h_.rng() & 0x7ff));
        s.fx.Put<uint64_t>(emu::FxState::kFip, h_.rng());
        s.fx.Put<uint64_t>(emu::FxState::kFdp, h_.rng());
      }
      emu::UpdateX87Summary(s.fx);
      s.gpr[emu::kRsi] &= ~uint64_t{15};
      std::vector<uint8_t> code{0x0f, 0xae, 0x06};
      if (rex) code.insert(code.begin(), rex);
      h_.Check(code, s);
    }
  }
  // FXRSTOR from an image FXSAVE would write (valid MXCSR), then FXSAVE it back elsewhere.
  for (uint8_t rex : {0x00, 0x48}) {
    for (int i = 0; i < 20; ++i) {
      CaseState s = h_.StartState();
      s.gpr[emu::kRsi] &= ~uint64_t{15};
      s.gpr[emu::kRdi] = kScratchAddr + 0x1000;
      auto scratch = h_.Scratch();
      uint8_t* img = &scratch[s.gpr[emu::kRsi] - kScratchAddr];
      const uint32_t mxcsr = static_cast<uint32_t>(h_.rng()) & (i == 3 ? 0xfffff : 0xffff);
      std::memcpy(img + 24, &mxcsr, 4);
      const uint16_t fsw = static_cast<uint16_t>(h_.rng() & 0x3f7f);
      std::memcpy(img + 2, &fsw, 2);
      img[0] = 0x7f, img[1] = 0x03;                                   // FCW: all masked
      std::vector<uint8_t> code{0x0f, 0xae, 0x0e, 0x0f, 0xae, 0x07};  // fxrstor [rsi]; fxsave [rdi]
      if (rex) {
        code.insert(code.begin() + 3, rex);
        code.insert(code.begin(), rex);
      }
      h_.Check(code, s, scratch);
    }
  }
}

// Floating-point lanes: zeros, ones, denormals, infinities, QNaN/SNaN, extremes, random.
uint64_t FloatLanes(std::mt19937_64& rng) {
  static constexpr uint32_t kSingles[] = {0,          0x80000000, 0x3f800000, 0xbf800000,
                                          0x00000001, 0x807fffff, 0x7f800000, 0xff800000,
                                          0x7fc00000, 0xffc00001, 0x7f800001, 0x7f7fffff,
                                          0x00800000, 0x4f000000, 0xcf000000, 0x3fc00000};
  static constexpr uint64_t kDoubles[] = {
      0,
      0x8000000000000000ull,
      0x3ff0000000000000ull,
      0xbff0000000000000ull,
      0x0000000000000001ull,
      0x800fffffffffffffull,
      0x7ff0000000000000ull,
      0xfff0000000000000ull,
      0x7ff8000000000000ull,
      0xfff8000000000001ull,
      0x7ff0000000000001ull,
      0x7fefffffffffffffull,
      0x0010000000000000ull,
      0x43e0000000000000ull,  // 2^63
      0xc3e0000000000000ull,
      0x41dfffffffc00000ull,  // 2^31 - 1
  };
  switch (rng() % 4) {
    case 0:
      return kSingles[rng() % 16] | uint64_t{kSingles[rng() % 16]} << 32;
    case 1:
      return kDoubles[rng() % 16];
    case 2:  // random finite doubles near 1 (inexact results, rounding modes)
      return 0x3ff0000000000000ull | (rng() & 0x000fffffffffffffull) | (rng() & 1) << 63;
    default:
      return rng();
  }
}

TEST_F(EmuDiff, SseFloatingPoint) {
  auto float_state = [&](std::vector<uint8_t>& scratch) {
    CaseState s = h_.StartState();
    for (int i = 0; i < 16; ++i) {
      const uint64_t lo = FloatLanes(h_.rng), hi = FloatLanes(h_.rng);
      std::memcpy(s.fx.xmm(i), &lo, 8);
      std::memcpy(s.fx.xmm(i) + 8, &hi, 8);
    }
    // Unmasked exceptions in one case in four: #XM (#UD here: CR4.OSXMMEXCPT is clear).
    if (h_.rng() % 4 == 0) s.fx.set_mxcsr(s.fx.mxcsr() & ~(h_.rng() & 0x1f80));
    for (uint64_t at : {s.gpr[emu::kRsi], s.gpr[emu::kRdi] + 1}) {
      for (int q = 0; q < 2; ++q) {
        const uint64_t v = FloatLanes(h_.rng);
        std::memcpy(&scratch[at - kScratchAddr + 8 * q], &v, 8);
      }
    }
    return s;
  };
  auto run = [&](uint8_t prefix, uint8_t op, std::optional<uint8_t> imm, int n) {
    for (const Form& f : kForms) {
      std::vector<uint8_t> body{op, f.modrm};
      if (f.modrm == 0x5f) body.push_back(1);
      if (imm) body.push_back(*imm);
      for (int i = 0; i < n; ++i) {
        auto scratch = h_.Scratch();
        CaseState s = float_state(scratch);
        h_.Check(SseOp(prefix, body, f.rex), s, scratch);
      }
    }
  };
  for (uint8_t p : {0x00, 0x66, 0xf3, 0xf2}) {
    for (uint8_t op : {0x51, 0x58, 0x59, 0x5a, 0x5c, 0x5d, 0x5e, 0x5f}) run(p, op, {}, 4);
    for (uint8_t imm : {0, 1, 2, 3, 4, 5, 6, 7, 8, 0x1f, 0xff}) run(p, 0xc2, imm, 1);
  }
  for (uint8_t p : {0x00, 0x66, 0xf3}) run(p, 0x5b, {}, 4);
  for (uint8_t p : {0x66, 0xf3, 0xf2}) run(p, 0xe6, {}, 4);
  for (uint8_t p : {0x00, 0x66}) {
    run(p, 0x2e, {}, 6);
    run(p, 0x2f, {}, 6);
  }
  for (uint8_t p : {0xf3, 0xf2}) {
    for (uint8_t rex : {0x00, 0x48}) {
      for (uint8_t modrm : {0xc3, 0x06}) {  // cvtsi2s* xmm0, ebx/rbx / [rsi]
        for (int i = 0; i < 8; ++i) {
          auto scratch = h_.Scratch();
          CaseState s = float_state(scratch);
          h_.Check(SseOp(p, {0x2a, modrm}, rex), s, scratch);
        }
      }
      for (uint8_t op : {0x2c, 0x2d}) {
        for (uint8_t modrm : {0xc1, 0x06}) {  // cvt(t)s*2si eax/rax, xmm1 / [rsi]
          for (int i = 0; i < 8; ++i) {
            auto scratch = h_.Scratch();
            CaseState s = float_state(scratch);
            h_.Check(SseOp(p, {op, modrm}, rex), s, scratch);
          }
        }
      }
    }
  }
}

// Random SSE instructions: prefixes (66/F2/F3, segment, 67, REX) before 0F and one of the
// SSE opcode bytes, then random ModRM/SIB/displacement/immediate bytes; half the cases start
// from floating-point lanes. Catches what the targeted groups do not enumerate: redundant
// and conflicting mandatory prefixes, REX.W on SSE forms, every register pair.
TEST_F(EmuDiff, RandomSseInstructions) {
  static constexpr uint8_t kOps[] = {
      0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x28, 0x29, 0x2a, 0x2b, 0x2c, 0x2d,
      0x2e, 0x2f, 0x50, 0x51, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d,
      0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b,
      0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0x73, 0x74, 0x75, 0x76, 0x77, 0x7e, 0x7f,
      0xae, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xd1, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8,
      0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6,
      0xe7, 0xe8, 0xe9, 0xea, 0xeb, 0xec, 0xed, 0xee, 0xef, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5,
      0xf6, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd, 0xfe};
  static constexpr uint8_t kPrefixes[] = {0x66, 0x66, 0xf2, 0xf3, 0x2e, 0x3e, 0x64, 0x67};
  int target = 1000;
  if (const char* n = std::getenv("VIREO_EMU_DIFF_RANDOM_SSE")) target = std::atoi(n);
  h_.allow_unimplemented = true;
  int generated = 0;
  while (generated < target) {
    std::vector<uint8_t> bytes;
    // A mandatory prefix most of the time (no prefix is mostly MMX, not emulated), then
    // maybe one more prefix of any kind.
    static constexpr uint8_t kMandatory[] = {0x66, 0x66, 0x66, 0x66, 0x66, 0xf3, 0xf2, 0x00};
    if (uint8_t p = kMandatory[h_.rng() % std::size(kMandatory)]) bytes.push_back(p);
    if (h_.rng() % 3 == 0) bytes.push_back(kPrefixes[h_.rng() % std::size(kPrefixes)]);
    if (h_.rng() % 2) bytes.push_back(static_cast<uint8_t>(0x40 | (h_.rng() & 15)));
    bytes.push_back(0x0f);
    bytes.push_back(kOps[h_.rng() % std::size(kOps)]);
    while (bytes.size() < 15) bytes.push_back(static_cast<uint8_t>(h_.rng()));
    emu::DecodedInsn insn;
    if (emu::Decoder::Decode(bytes.data(), bytes.size(), emu::CpuMode::kLong64, &insn) !=
        emu::DecodeStatus::kOk)
      continue;
    if (!RandomCandidate(insn)) continue;
    std::vector<uint8_t> code(bytes.begin(), bytes.begin() + insn.length());
    auto scratch = h_.Scratch();
    CaseState s = h_.StartState();
    if (h_.rng() % 2) {
      for (int i = 0; i < 16; ++i) {
        const uint64_t lo = FloatLanes(h_.rng), hi = FloatLanes(h_.rng);
        std::memcpy(s.fx.xmm(i), &lo, 8);
        std::memcpy(s.fx.xmm(i) + 8, &hi, 8);
      }
      for (uint64_t at = s.gpr[emu::kRsi] - 128; at < s.gpr[emu::kRsi] + 144; at += 8) {
        const uint64_t v = FloatLanes(h_.rng);
        std::memcpy(&scratch[at - kScratchAddr], &v, 8);
      }
    }
    ++generated;
    h_.Check(code, s, scratch);
  }
}

}  // namespace
}  // namespace vireo::emu_diff
