// The differential harness's shared part: the edge values, the comparison of two case
// results (GPRs, RIP, RFLAGS, x87/SSE registers, scratch memory), the gtest fixture and the
// filter for random instructions. Groups live in emu_diff_test.cc (integer, system) and
// emu_diff_sse_test.cc (x87 control, SSE).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "accel/emu/decoded_insn.h"
#include "accel/emu/interpreter.h"
#include "cpl3_machine.h"

namespace vireo::emu_diff {

inline constexpr uint64_t kEdges[] = {0,
                                      1,
                                      2,
                                      0x7f,
                                      0x80,
                                      0xff,
                                      0x7fff,
                                      0x8000,
                                      0xffff,
                                      0x7fffffff,
                                      0x80000000,
                                      0xffffffff,
                                      0x7fffffffffffffffull,
                                      0x8000000000000000ull,
                                      ~0ull,
                                      0x123456789abcdef0ull};

// The x87/SSE registers both machines report: FCW, FSW, abridged FTW, MXCSR, ST0-7 (80
// bits each), XMM0-15. FOP/FIP/FDP are compared through memory by the cases that end with
// FXSAVE (the x87 groups' PointersAfterAnException among them).
inline std::string FxDiff(const emu::FxState& hw, const emu::FxState& sw) {
  std::string why;
  if (hw.fcw() != sw.fcw()) why += fmt::format("fcw hw {:#x} sw {:#x}; ", hw.fcw(), sw.fcw());
  if (hw.fsw() != sw.fsw()) why += fmt::format("fsw hw {:#x} sw {:#x}; ", hw.fsw(), sw.fsw());
  if (hw.ftw() != sw.ftw()) why += fmt::format("ftw hw {:#x} sw {:#x}; ", hw.ftw(), sw.ftw());
  if (hw.mxcsr() != sw.mxcsr())
    why += fmt::format("mxcsr hw {:#x} sw {:#x}; ", hw.mxcsr(), sw.mxcsr());
  auto hex = [](const uint8_t* p, int n) {
    std::string s;
    for (int i = n - 1; i >= 0; --i) s += fmt::format("{:02x}", p[i]);
    return s;
  };
  for (int i = 0; i < 8; ++i) {
    if (std::memcmp(hw.st(i), sw.st(i), 10) != 0)
      why += fmt::format("st{} hw {} sw {}; ", i, hex(hw.st(i), 10), hex(sw.st(i), 10));
  }
  for (int i = 0; i < 16; ++i) {
    if (std::memcmp(hw.xmm(i), sw.xmm(i), 16) != 0)
      why += fmt::format("xmm{} hw {} sw {}; ", i, hex(hw.xmm(i), 16), hex(sw.xmm(i), 16));
  }
  return why;
}

// The first differing bytes of the scratch area, for the mismatch line.
inline std::string ScratchDiff(const std::array<uint8_t, kScratchSize>& hw,
                               const std::array<uint8_t, kScratchSize>& sw) {
  std::string why = "scratch differs at";
  int shown = 0;
  for (size_t i = 0; i < kScratchSize && shown < 8; ++i) {
    if (hw[i] != sw[i]) {
      why += fmt::format(" +{:#x} hw {:02x} sw {:02x}", i, hw[i], sw[i]);
      ++shown;
    }
  }
  return why + "; ";
}

// VIREO_EMU_DIFF_SEED=N: another random stream, so long runs can be split into shards
// that cover different cases (the default, 42, is what make test runs).
inline uint64_t SeedFromEnv() {
  const char* seed = std::getenv("VIREO_EMU_DIFF_SEED");
  return seed ? std::strtoull(seed, nullptr, 10) : 42;
}

struct Harness {
  std::unique_ptr<Cpl3Machines> machines;
  std::mt19937_64 rng{SeedFromEnv()};
  int cases = 0, mismatches = 0, both_faulted = 0, unimplemented = 0;
  bool allow_unimplemented = false;  // random cases: a known gap, counted, not a mismatch
  FILE* save = nullptr;

  uint64_t Edge() { return rng() % 4 == 0 ? rng() : kEdges[rng() % std::size(kEdges)]; }

  // An XMM qword: the GPR edges, or the same edge in every byte/word/dword lane.
  uint64_t LaneEdge() {
    static constexpr uint64_t kLanes[] = {
        0x8080808080808080ull, 0x7f7f7f7f7f7f7f7full, 0x8000800080008000ull, 0x7fff7fff7fff7fffull,
        0x8000000080000000ull, 0x7fffffff7fffffffull, 0x0001000100010001ull, 0xff00ff00ff00ff00ull,
        0x00ff00ff00ff00ffull, 0x0101010101010101ull};
    return rng() % 3 == 0 ? kLanes[rng() % std::size(kLanes)] : Edge();
  }

  // x87 as after FNINIT (FCW 0x37f, nothing pending), random ST contents, MXCSR with all
  // exceptions masked and random flags/rounding/FZ/DAZ, XMM lanes from edge values.
  emu::FxState FxStart() {
    emu::FxState fx;
    fx.set_fcw(0x37f);
    for (int i = 0; i < 8; ++i) {
      for (int b = 0; b < 10; ++b) fx.st(i)[b] = static_cast<uint8_t>(rng());
    }
    fx.set_mxcsr(0x1f80 | (rng() & 0xe07f));
    // AMD's misaligned-SSE mode (MXCSR.MM) in one case in 8: m128 operands of computational
    // instructions need no alignment then, MOVAPS/MOVDQA/MOVNT* still do.
    if (rng() % 8 == 0) fx.set_mxcsr(fx.mxcsr() | emu::FxState::kMxcsrMm);
    for (int i = 0; i < 16; ++i) {
      const uint64_t lo = LaneEdge(), hi = LaneEdge();
      std::memcpy(fx.xmm(i), &lo, 8);
      std::memcpy(fx.xmm(i) + 8, &hi, 8);
    }
    return fx;
  }

  CaseState StartState() {
    CaseState s;
    for (auto& g : s.gpr) g = Edge();
    s.gpr[emu::kRsp] = kStackTop;
    s.gpr[emu::kRsi] = kScratchAddr + 0x400 + (rng() % 64) * 8;
    s.gpr[emu::kRdi] = kScratchAddr + 0x800 + (rng() % 64) * 8;
    // Arithmetic flags and DF at random; IF set (CPL3 cannot clear it anyway).
    s.rflags = 0x202 | (rng() & (emu::kArithFlags | emu::kDf));
    s.fx = FxStart();
    return s;
  }

  std::vector<uint8_t> Scratch() {
    std::vector<uint8_t> s(kScratchSize);
    for (auto& b : s) b = static_cast<uint8_t>(rng());
    return s;
  }

  // Runs one case on both machines and compares.
  void Check(const std::vector<uint8_t>& code, const CaseState& start) {
    Check(code, start, Scratch());
  }
  void Check(const std::vector<uint8_t>& code, const CaseState& start,
             const std::vector<uint8_t>& scratch) {
    CaseResult hw = machines->RunKvm(code, start, scratch);

    CaseResult sw = machines->RunEmu(code, start, scratch);
    if (allow_unimplemented && sw.outcome == Outcome::kOther && sw.detail == "status 5") {
      ++unimplemented;
      return;
    }
    ++cases;
    std::string why;
    if (hw.outcome == Outcome::kOther) {
      why = "kvm: " + hw.detail;
    } else if (hw.outcome != sw.outcome) {
      why = fmt::format("outcome hw {} sw {} ({})", int(hw.outcome), int(sw.outcome), sw.detail);
    } else if (hw.outcome == Outcome::kFaulted) {
      ++both_faulted;
      return;
    } else {
      for (int i = 0; i < 16; ++i) {
        if (hw.state.gpr[i] != sw.state.gpr[i])
          why += fmt::format("r{} hw {:#x} sw {:#x}; ", i, hw.state.gpr[i], sw.state.gpr[i]);
      }
      if (hw.state.rip != sw.state.rip)
        why += fmt::format("rip hw {:#x} sw {:#x}; ", hw.state.rip, sw.state.rip);
      if (hw.state.rflags != sw.state.rflags)
        why += fmt::format("rflags hw {:#x} sw {:#x}; ", hw.state.rflags, sw.state.rflags);
      if (hw.scratch != sw.scratch) why += ScratchDiff(hw.scratch, sw.scratch);
      why += FxDiff(hw.state.fx, sw.state.fx);
    }
    if (why.empty()) return;
    ++mismatches;
    std::string hex;
    for (uint8_t b : code) hex += fmt::format("{:02x}", b);
    std::string regs;
    for (uint64_t g : start.gpr) regs += fmt::format("{:x},", g);
    const std::string line =
        fmt::format("code={} rflags={:#x} gpr={} :: {}", hex, start.rflags, regs, why);
    if (save) std::fprintf(save, "%s\n", line.c_str());
    if (mismatches <= 30) ADD_FAILURE() << line;
  }
};

class EmuDiff : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
    auto m = Cpl3Machines::Create();
    ASSERT_TRUE(m) << m.error().message;
    h_.machines = std::move(*m);
    if (const char* path = std::getenv("VIREO_EMU_DIFF_SAVE")) h_.save = std::fopen(path, "a");
  }
  void TearDown() override {
    if (h_.save) std::fclose(h_.save);
    std::printf("emu_diff %s: %d cases, %d both faulted, %d mismatches, %d not emulated\n",
                ::testing::UnitTest::GetInstance()->current_test_info()->name(), h_.cases,
                h_.both_faulted, h_.mismatches, h_.unimplemented);
    EXPECT_EQ(h_.mismatches, 0);
  }

  // Prefixes for an operand size: 0 = byte form (opcode - 1), 1 = 66, 2 = none, 3 = REX.W.
  static std::vector<uint8_t> Sized(int size, std::vector<uint8_t> body, bool has_byte_form) {
    std::vector<uint8_t> out;
    if (size == 1) out.push_back(0x66);
    if (size == 3) out.push_back(0x48);
    if (size == 0 && has_byte_form) body[0] -= 1;
    out.insert(out.end(), body.begin(), body.end());
    return out;
  }

  // Runs `code` `n` times from fresh edge-value states.
  void Many(const std::vector<uint8_t>& code, int n = 12) {
    for (int i = 0; i < n; ++i) h_.Check(code, h_.StartState());
  }

  Harness h_;
};

// Random instructions: whether a decoded instruction may run as a random case (emu_diff_test.cc).
bool RandomCandidate(const emu::DecodedInsn& insn);

}  // namespace vireo::emu_diff
