// SSE2 packed-integer arithmetic on XMM registers (66 0F xx, SDM Vol. 2 "PADDB" ... "PXOR"):
// add/subtract (wrapping and saturating), compare, min/max, average, multiply, PSADBW,
// PMADDWD, logic, unpack/pack, and the shifts by an XMM count or an immediate
// (66 0F 71-73 groups). The MMX forms (no prefix, MM registers) are not emulated: they report
// kUnimplemented; F2/F3 forms of these opcodes are #UD (as this CPU does: harness-checked).
#include <algorithm>
#include <limits>

#include "accel/emu/sse.h"

namespace vireo::emu {
namespace {

using sse::Xmm;

template <typename T, typename F>
Xmm Map(const Xmm& a, const Xmm& b, F f) {
  Xmm r;
  for (int i = 0; i < Xmm::Lanes<T>(); ++i)
    r.Set<T>(i, static_cast<T>(f(a.Get<T>(i), b.Get<T>(i))));
  return r;
}

template <typename T>
T Saturate(int64_t v) {
  return static_cast<T>(
      std::clamp<int64_t>(v, std::numeric_limits<T>::min(), std::numeric_limits<T>::max()));
}

template <typename T>
Xmm Add(const Xmm& a, const Xmm& b) {
  return Map<T>(a, b, [](T x, T y) { return static_cast<T>(x + y); });
}
template <typename T>
Xmm Sub(const Xmm& a, const Xmm& b) {
  return Map<T>(a, b, [](T x, T y) { return static_cast<T>(x - y); });
}
template <typename T>
Xmm AddSat(const Xmm& a, const Xmm& b) {
  return Map<T>(a, b, [](T x, T y) { return Saturate<T>(int64_t{x} + int64_t{y}); });
}
template <typename T>
Xmm SubSat(const Xmm& a, const Xmm& b) {
  return Map<T>(a, b, [](T x, T y) { return Saturate<T>(int64_t{x} - int64_t{y}); });
}
template <typename T>
Xmm CmpEq(const Xmm& a, const Xmm& b) {
  return Map<T>(a, b, [](T x, T y) { return x == y ? T(~T{0}) : T{0}; });
}
template <typename T>
Xmm CmpGt(const Xmm& a, const Xmm& b) {  // signed lanes
  return Map<T>(a, b, [](T x, T y) { return x > y ? T(-1) : T{0}; });
}
template <typename T>
Xmm Min(const Xmm& a, const Xmm& b) {
  return Map<T>(a, b, [](T x, T y) { return std::min(x, y); });
}
template <typename T>
Xmm Max(const Xmm& a, const Xmm& b) {
  return Map<T>(a, b, [](T x, T y) { return std::max(x, y); });
}
template <typename T>
Xmm Avg(const Xmm& a, const Xmm& b) {
  return Map<T>(a, b, [](T x, T y) { return (uint32_t{x} + uint32_t{y} + 1) >> 1; });
}

// PUNPCKL*/PUNPCKH*: interleave the low (or high) halves of a and b, a's lane first.
template <typename T>
Xmm Unpack(const Xmm& a, const Xmm& b, bool high) {
  Xmm r;
  const int half = Xmm::Lanes<T>() / 2, base = high ? half : 0;
  for (int i = 0; i < half; ++i) {
    r.Set<T>(2 * i, a.Get<T>(base + i));
    r.Set<T>(2 * i + 1, b.Get<T>(base + i));
  }
  return r;
}

// PACKSSWB/PACKUSWB/PACKSSDW: a's lanes then b's, each narrowed with saturation.
template <typename From, typename To>
Xmm Pack(const Xmm& a, const Xmm& b) {
  Xmm r;
  const int n = Xmm::Lanes<From>();
  for (int i = 0; i < n; ++i) {
    r.Set<To>(i, Saturate<To>(a.Get<From>(i)));
    r.Set<To>(n + i, Saturate<To>(b.Get<From>(i)));
  }
  return r;
}

// Shifts of every lane by `count` (PSLL/PSRL/PSRA): counts past the lane width give 0, or
// the sign for arithmetic shifts (SDM Vol. 2 "PSRAW/PSRAD").
template <typename T>
Xmm ShiftLeft(const Xmm& a, uint64_t count) {
  Xmm r;
  for (int i = 0; i < Xmm::Lanes<T>(); ++i)
    r.Set<T>(i, count >= sizeof(T) * 8 ? T{0} : static_cast<T>(a.Get<T>(i) << count));
  return r;
}
template <typename T>
Xmm ShiftRight(const Xmm& a, uint64_t count) {
  Xmm r;
  for (int i = 0; i < Xmm::Lanes<T>(); ++i)
    r.Set<T>(i, count >= sizeof(T) * 8 ? T{0} : static_cast<T>(a.Get<T>(i) >> count));
  return r;
}
template <typename S>
Xmm ShiftArith(const Xmm& a, uint64_t count) {
  Xmm r;
  const uint64_t c = std::min<uint64_t>(count, sizeof(S) * 8 - 1);
  for (int i = 0; i < Xmm::Lanes<S>(); ++i) r.Set<S>(i, static_cast<S>(a.Get<S>(i) >> c));
  return r;
}
// PSLLDQ/PSRLDQ: whole-register byte shifts; counts above 15 clear it.
Xmm ByteShift(const Xmm& a, unsigned count, bool left) {
  Xmm r;
  for (int i = 0; i < 16; ++i) {
    const int from = left ? i - static_cast<int>(count) : i + static_cast<int>(count);
    r.b[i] = (count < 16 && from >= 0 && from < 16) ? a.b[from] : 0;
  }
  return r;
}

Xmm Bitwise(const Xmm& a, const Xmm& b, int op) {
  return Map<uint64_t>(a, b, [op](uint64_t x, uint64_t y) {
    switch (op) {
      case 0:
        return x & y;
      case 1:
        return ~x & y;
      case 2:
        return x | y;
      default:
        return x ^ y;
    }
  });
}

// dst = dst op src for the 66 0F binary ops; false when `op` is not one of them.
bool Binary(uint8_t op, const Xmm& a, const Xmm& b, Xmm* r) {
  switch (op) {
    // clang-format off
    case 0x60: *r = Unpack<uint8_t>(a, b, false); break;   // PUNPCKLBW
    case 0x61: *r = Unpack<uint16_t>(a, b, false); break;  // PUNPCKLWD
    case 0x62: *r = Unpack<uint32_t>(a, b, false); break;  // PUNPCKLDQ
    case 0x63: *r = Pack<int16_t, int8_t>(a, b); break;    // PACKSSWB
    case 0x64: *r = CmpGt<int8_t>(a, b); break;
    case 0x65: *r = CmpGt<int16_t>(a, b); break;
    case 0x66: *r = CmpGt<int32_t>(a, b); break;
    case 0x67: *r = Pack<int16_t, uint8_t>(a, b); break;   // PACKUSWB
    case 0x68: *r = Unpack<uint8_t>(a, b, true); break;    // PUNPCKHBW
    case 0x69: *r = Unpack<uint16_t>(a, b, true); break;
    case 0x6a: *r = Unpack<uint32_t>(a, b, true); break;
    case 0x6b: *r = Pack<int32_t, int16_t>(a, b); break;   // PACKSSDW
    case 0x6c: *r = Unpack<uint64_t>(a, b, false); break;  // PUNPCKLQDQ
    case 0x6d: *r = Unpack<uint64_t>(a, b, true); break;   // PUNPCKHQDQ
    case 0x74: *r = CmpEq<uint8_t>(a, b); break;
    case 0x75: *r = CmpEq<uint16_t>(a, b); break;
    case 0x76: *r = CmpEq<uint32_t>(a, b); break;
    case 0xd1: *r = ShiftRight<uint16_t>(a, b.Get<uint64_t>(0)); break;  // PSRLW
    case 0xd2: *r = ShiftRight<uint32_t>(a, b.Get<uint64_t>(0)); break;
    case 0xd3: *r = ShiftRight<uint64_t>(a, b.Get<uint64_t>(0)); break;
    case 0xd4: *r = Add<uint64_t>(a, b); break;                          // PADDQ
    case 0xd5: *r = Map<int16_t>(a, b, [](int32_t x, int32_t y) { return x * y; }); break;
    case 0xd8: *r = SubSat<uint8_t>(a, b); break;                         // PSUBUSB
    case 0xd9: *r = SubSat<uint16_t>(a, b); break;
    case 0xda: *r = Min<uint8_t>(a, b); break;                            // PMINUB
    case 0xdb: *r = Bitwise(a, b, 0); break;                              // PAND
    case 0xdc: *r = AddSat<uint8_t>(a, b); break;                         // PADDUSB
    case 0xdd: *r = AddSat<uint16_t>(a, b); break;
    case 0xde: *r = Max<uint8_t>(a, b); break;                            // PMAXUB
    case 0xdf: *r = Bitwise(a, b, 1); break;                              // PANDN
    case 0xe0: *r = Avg<uint8_t>(a, b); break;                            // PAVGB
    case 0xe1: *r = ShiftArith<int16_t>(a, b.Get<uint64_t>(0)); break;    // PSRAW
    case 0xe2: *r = ShiftArith<int32_t>(a, b.Get<uint64_t>(0)); break;
    case 0xe3: *r = Avg<uint16_t>(a, b); break;                           // PAVGW
    case 0xe4:                                                            // PMULHUW
      *r = Map<uint16_t>(a, b, [](uint32_t x, uint32_t y) { return (x * y) >> 16; });
      break;
    case 0xe5:                                                            // PMULHW
      *r = Map<int16_t>(a, b, [](int32_t x, int32_t y) { return (x * y) >> 16; });
      break;
    case 0xe8: *r = SubSat<int8_t>(a, b); break;                          // PSUBSB
    case 0xe9: *r = SubSat<int16_t>(a, b); break;
    case 0xea: *r = Min<int16_t>(a, b); break;                            // PMINSW
    case 0xeb: *r = Bitwise(a, b, 2); break;                              // POR
    case 0xec: *r = AddSat<int8_t>(a, b); break;                          // PADDSB
    case 0xed: *r = AddSat<int16_t>(a, b); break;
    case 0xee: *r = Max<int16_t>(a, b); break;                            // PMAXSW
    case 0xef: *r = Bitwise(a, b, 3); break;                              // PXOR
    case 0xf1: *r = ShiftLeft<uint16_t>(a, b.Get<uint64_t>(0)); break;    // PSLLW
    case 0xf2: *r = ShiftLeft<uint32_t>(a, b.Get<uint64_t>(0)); break;
    case 0xf3: *r = ShiftLeft<uint64_t>(a, b.Get<uint64_t>(0)); break;
    case 0xf8: *r = Sub<uint8_t>(a, b); break;
    case 0xf9: *r = Sub<uint16_t>(a, b); break;
    case 0xfa: *r = Sub<uint32_t>(a, b); break;
    case 0xfb: *r = Sub<uint64_t>(a, b); break;
    case 0xfc: *r = Add<uint8_t>(a, b); break;
    case 0xfd: *r = Add<uint16_t>(a, b); break;
    case 0xfe: *r = Add<uint32_t>(a, b); break;
    // clang-format on
    case 0xf4:  // PMULUDQ: low dwords of each qword, full 64-bit products
      for (int i = 0; i < 2; ++i)
        r->Set<uint64_t>(i, uint64_t{a.Get<uint32_t>(2 * i)} * b.Get<uint32_t>(2 * i));
      break;
    case 0xf5:  // PMADDWD: pairwise signed word products summed into dwords
      for (int i = 0; i < 4; ++i) {
        const int32_t lo = int32_t{a.Get<int16_t>(2 * i)} * b.Get<int16_t>(2 * i);
        const int32_t hi = int32_t{a.Get<int16_t>(2 * i + 1)} * b.Get<int16_t>(2 * i + 1);
        // -32768 * -32768 twice wraps to 0x80000000, as the SDM says.
        r->Set<uint32_t>(i, static_cast<uint32_t>(lo) + static_cast<uint32_t>(hi));
      }
      break;
    case 0xf6:  // PSADBW: per 8-byte half, the sum of absolute differences in a word
      for (int h = 0; h < 2; ++h) {
        uint64_t sum = 0;
        for (int i = 0; i < 8; ++i) {
          const int d = int{a.b[8 * h + i]} - int{b.b[8 * h + i]};
          sum += static_cast<uint64_t>(d < 0 ? -d : d);
        }
        r->Set<uint64_t>(h, sum);
      }
      break;
    default:
      return false;
  }
  return true;
}

StepStatus PackedBinary(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.mandatory_prefix() == sse::kNoPrefix) return cpu.Unimplemented();  // MMX
  if (insn.mandatory_prefix() != sse::k66) return cpu.Raise(kInvalidOpcode);  // F2/F3: none
  if (StepStatus st = sse::SseCheck(cpu); st != StepStatus::kOk) return st;
  sse::Xmm src, result;
  if (StepStatus st = sse::LoadRm(cpu, insn, 16, sse::Align::kArith, src); st != StepStatus::kOk)
    return st;
  if (!Binary(insn.opcode() & 0xff, sse::GetXmm(cpu, insn.reg()), src, &result))
    return cpu.Unimplemented();
  sse::SetXmm(cpu, insn.reg(), result);
  return StepStatus::kOk;
}

// 66 0F 71/72/73 /digit ib: shifts of xmm rm() by an immediate (register form only).
StepStatus ShiftImmediate(Interpreter& cpu, const DecodedInsn& insn) {
  if (insn.mandatory_prefix() == sse::kNoPrefix) return cpu.Unimplemented();  // MMX
  if (insn.mandatory_prefix() != sse::k66) return cpu.Raise(kInvalidOpcode);  // F2/F3: none
  const uint8_t op = insn.opcode() & 0xff;
  const int digit = insn.group_op();
  // Valid digits: 71/72: 2 4 6; 73: 2 3 6 7 (SDM Vol. 2 Table A-6).
  const bool valid = op == 0x73 ? (digit == 2 || digit == 3 || digit == 6 || digit == 7)
                                : (digit == 2 || digit == 4 || digit == 6);
  if (!valid || !insn.is_reg_form()) return cpu.Raise(kInvalidOpcode);
  if (StepStatus st = sse::SseCheck(cpu); st != StepStatus::kOk) return st;
  const Xmm a = sse::GetXmm(cpu, insn.rm());
  const uint64_t count = insn.imm() & 0xff;
  Xmm r;
  if (op == 0x71) {
    r = digit == 2   ? ShiftRight<uint16_t>(a, count)
        : digit == 4 ? ShiftArith<int16_t>(a, count)
                     : ShiftLeft<uint16_t>(a, count);
  } else if (op == 0x72) {
    r = digit == 2   ? ShiftRight<uint32_t>(a, count)
        : digit == 4 ? ShiftArith<int32_t>(a, count)
                     : ShiftLeft<uint32_t>(a, count);
  } else {
    r = digit == 2   ? ShiftRight<uint64_t>(a, count)
        : digit == 6 ? ShiftLeft<uint64_t>(a, count)
                     : ByteShift(a, static_cast<unsigned>(count), digit == 7);
  }
  sse::SetXmm(cpu, insn.rm(), r);
  return StepStatus::kOk;
}

}  // namespace

void RegisterSseInteger(HandlerTable& t) {
  for (int op = 0x60; op <= 0x6d; ++op) t[kMap0F | op] = PackedBinary;
  for (int op = 0x74; op <= 0x76; ++op) t[kMap0F | op] = PackedBinary;
  for (int op = 0xd1; op <= 0xfe; ++op) {
    // Not binary ops: D6 MOVQ, D7 PMOVMSKB, E6 CVT*, E7 MOVNTDQ, F0 LDDQU, F7 MASKMOVDQU.
    if (op == 0xd6 || op == 0xd7 || op == 0xe6 || op == 0xe7 || op == 0xf0 || op == 0xf7) continue;
    t[kMap0F | op] = PackedBinary;  // the ones Binary() does not know report kUnimplemented
  }
  for (int op = 0x71; op <= 0x73; ++op) t[kMap0F | op] = ShiftImmediate;
}

}  // namespace vireo::emu
