// Differential harness, x87 arithmetic (src/accel/emu/insn_x87.cc): every register encoding
// of D8-DF and every memory form against the real CPU, from stacks of edge 80-bit values with
// random tags, TOP, rounding and precision control and exception masks; see harness.h.
#include <cstring>
#include <random>
#include <vector>

#include "accel/emu/insn_groups.h"
#include "harness.h"

namespace vireo::emu_diff {
namespace {

// An 80-bit value: zeros, ones, pi, denormals, a pseudo-denormal, infinities, NaNs (quiet,
// signalling, the indefinite), an unnormal, the extremes, 2^63, random numbers near 1 and
// random bits.
void Extended(std::mt19937_64& rng, uint8_t* out) {
  struct Edge {
    uint64_t mantissa;
    uint16_t sign_exponent;
  };
  static constexpr Edge kEdgeValues[] = {
      {0, 0},
      {0, 0x8000},
      {0x8000000000000000ull, 0x3fff},
      {0x8000000000000000ull, 0xbfff},
      {0xc90fdaa22168c235ull, 0x4000},
      {1, 0},
      {0x8000000000000001ull, 0},
      {0x8000000000000000ull, 0x7fff},
      {0x8000000000000000ull, 0xffff},
      {0xc000000000000000ull, 0x7fff},
      {0xc000000000000000ull, 0xffff},
      {0x8000000000000001ull, 0x7fff},
      {0x4000000000000000ull, 0x3fff},
      {0xffffffffffffffffull, 0x7ffe},
      {0x8000000000000000ull, 0x0001},
      {0x8000000000000000ull, 0x403e},
  };
  uint64_t mantissa;
  uint16_t sign_exponent;
  switch (rng() % 4) {
    case 0:
    case 1: {
      const Edge& e = kEdgeValues[rng() % std::size(kEdgeValues)];
      mantissa = e.mantissa;
      sign_exponent = e.sign_exponent;
      break;
    }
    case 2:
      mantissa = 0x8000000000000000ull | rng();
      sign_exponent = static_cast<uint16_t>((0x3fff + rng() % 64 - 32) | (rng() & 1) << 15);
      break;
    default:
      mantissa = rng();
      sign_exponent = static_cast<uint16_t>(rng());
  }
  std::memcpy(out, &mantissa, 8);
  std::memcpy(out + 8, &sign_exponent, 2);
}

class X87Diff : public EmuDiff {
 protected:
  // A full or partly empty stack of edge values, random TOP, rounding and precision control;
  // all exceptions masked, or (one case in 6) a random mask set, nothing pending.
  CaseState X87State() {
    CaseState s = h_.StartState();
    emu::FxState& fx = s.fx;
    for (int i = 0; i < 8; ++i) Extended(h_.rng, fx.st(i));
    uint16_t fcw = static_cast<uint16_t>(0x1f7f & (0x0c3f | (h_.rng() & 0x0f00)));
    if (h_.rng() % 6 == 0) fcw = static_cast<uint16_t>((fcw & ~0x3f) | (h_.rng() & 0x3f));
    fx.set_fcw(static_cast<uint16_t>(fcw | 0x40));
    fx.set_fsw(static_cast<uint16_t>((h_.rng() & 7) << 11));
    fx.set_ftw(h_.rng() % 3 == 0 ? static_cast<uint8_t>(h_.rng()) : 0xff);
    emu::UpdateX87Summary(fx);
    return s;
  }

  // Scratch memory around [rsi] holding values of every operand type.
  std::vector<uint8_t> X87Scratch(const CaseState& s) {
    std::vector<uint8_t> scratch = h_.Scratch();
    uint8_t* at = &scratch[s.gpr[emu::kRsi] - kScratchAddr];
    switch (h_.rng() % 4) {
      case 0:  // an 80-bit value (FLD m80, FBLD reads BCD from random bytes)
        Extended(h_.rng, at);
        break;
      case 1: {  // a double from the edges or near 1
        const uint64_t d = h_.rng() % 2 ? 0x3ff0000000000000ull | (h_.rng() & 0x800fffffffffffffull)
                                        : kEdges[h_.rng() % std::size(kEdges)];
        std::memcpy(at, &d, 8);
        break;
      }
      case 2: {  // a float near 1, or an integer edge
        const uint32_t f = h_.rng() % 2
                               ? 0x3f800000u | (h_.rng() & 0x807fffffu)
                               : static_cast<uint32_t>(kEdges[h_.rng() % std::size(kEdges)]);
        std::memcpy(at, &f, 4);
        break;
      }
      default:
        break;  // random bytes (environments and saved states too)
    }
    return scratch;
  }

  void Run(const std::vector<uint8_t>& code, int n) {
    for (int i = 0; i < n; ++i) {
      CaseState s = X87State();
      h_.Check(code, s, X87Scratch(s));
    }
  }
};

// Every ModRM C0-FF of D8-DF: documented forms compared, the rest (undocumented aliases,
// encodings this CPU rejects) counted as not emulated.
TEST_F(X87Diff, RegisterForms) {
  h_.allow_unimplemented = true;
  for (int op = 0xd8; op <= 0xdf; ++op) {
    for (int modrm = 0xc0; modrm <= 0xff; ++modrm) {
      Run({static_cast<uint8_t>(op), static_cast<uint8_t>(modrm)}, 6);
    }
  }
  EXPECT_GT(h_.cases, 2000);
}

// Every memory form on [rsi]: loads, stores (with unmasked exceptions that suppress them),
// integer and BCD conversions, environments and saved states in both operand sizes.
TEST_F(X87Diff, MemoryForms) {
  h_.allow_unimplemented = true;
  for (int op = 0xd8; op <= 0xdf; ++op) {
    for (int digit = 0; digit < 8; ++digit) {
      const auto modrm = static_cast<uint8_t>((digit << 3) | 6);
      Run({static_cast<uint8_t>(op), modrm}, 16);
      if ((op == 0xd9 || op == 0xdd) && (digit == 4 || digit == 6))
        Run({0x66, static_cast<uint8_t>(op), modrm}, 16);
    }
  }
  EXPECT_GT(h_.cases, 800);
}

// Short sequences, so results feed later instructions (and a pending unmasked exception
// meets the next waiting instruction as #MF).
TEST_F(X87Diff, Sequences) {
  static const std::vector<std::vector<uint8_t>> kPieces = {
      {0xd9, 0xe8}, {0xd9, 0xeb}, {0xd9, 0xee}, {0xdd, 0x06}, {0xd9, 0x06}, {0xdb, 0x2e},
      {0xde, 0xc1}, {0xde, 0xc9}, {0xde, 0xe9}, {0xde, 0xf9}, {0xd9, 0xfa}, {0xd9, 0xfe},
      {0xd9, 0xff}, {0xd9, 0xf8}, {0xd9, 0xfd}, {0xdb, 0xf1}, {0xdd, 0x1e}, {0xdb, 0x3e},
      {0xdf, 0x3e}, {0xd9, 0xc9}, {0xd9, 0xe0}, {0xda, 0xc1}, {0xdf, 0xe9}, {0x9b}};
  for (int i = 0; i < 400; ++i) {
    std::vector<uint8_t> code;
    for (int k = 0; k < 4; ++k) {
      const auto& piece = kPieces[h_.rng() % kPieces.size()];
      code.insert(code.end(), piece.begin(), piece.end());
    }
    Run(code, 1);
  }
}

// One instruction then FXSAVE64 [rdi]: with an unmasked exception pending, this CPU stores the
// last instruction's FOP, FIP and FDP (the guest's own, never the host stub's).
TEST_F(X87Diff, PointersAfterAnException) {
  h_.allow_unimplemented = true;
  for (int i = 0; i < 600; ++i) {
    const auto op = static_cast<uint8_t>(0xd8 + h_.rng() % 8);
    const auto modrm =
        static_cast<uint8_t>(h_.rng() % 2 ? 0xc0 | h_.rng() : (h_.rng() % 8) << 3 | 6);
    CaseState s = X87State();
    s.fx.set_fcw(static_cast<uint16_t>((s.fx.fcw() & ~0x3f) | (h_.rng() & 0x3f)));
    emu::UpdateX87Summary(s.fx);
    s.gpr[emu::kRdi] &= ~uint64_t{15};
    h_.Check({op, modrm, 0x48, 0x0f, 0xae, 0x07}, s, X87Scratch(s));
  }
  EXPECT_GT(h_.cases, 300);
}

}  // namespace
}  // namespace vireo::emu_diff
