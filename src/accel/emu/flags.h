// Lazy arithmetic flags (the blink idea): an ALU instruction or shift records its operands,
// result and kind; CF/PF/AF/ZF/SF/OF are computed only when something reads them (Jcc,
// PUSHF, ADC, a register dump), and a condition computes only the flags it tests.
// Instructions whose flags are awkward to express that way (rotates, multiplies, bit scans)
// write the flags eagerly with kNone.
#pragma once

#include <cstdint>

namespace vireo::emu {

// RFLAGS bits (SDM Vol. 1 3.4.3).
inline constexpr uint64_t kCf = 1u << 0;
inline constexpr uint64_t kFixed1 = 1u << 1;
inline constexpr uint64_t kPf = 1u << 2;
inline constexpr uint64_t kAf = 1u << 4;
inline constexpr uint64_t kZf = 1u << 6;
inline constexpr uint64_t kSf = 1u << 7;
inline constexpr uint64_t kTf = 1u << 8;
inline constexpr uint64_t kIf = 1u << 9;
inline constexpr uint64_t kDf = 1u << 10;
inline constexpr uint64_t kOf = 1u << 11;
inline constexpr uint64_t kIopl = 3u << 12;
inline constexpr uint64_t kNt = 1u << 14;
inline constexpr uint64_t kRf = 1u << 16;
inline constexpr uint64_t kVm = 1u << 17;
inline constexpr uint64_t kAc = 1u << 18;
inline constexpr uint64_t kVif = 1u << 19;
inline constexpr uint64_t kVip = 1u << 20;
inline constexpr uint64_t kId = 1u << 21;
inline constexpr uint64_t kArithFlags = kCf | kPf | kAf | kZf | kSf | kOf;

// kShl/kShr/kSar: SHL/SAL, SHR, SAR by a masked count of 1 or more (dst = operand, src =
// count), which write all six flags.
enum class FlagOp : uint8_t {
  kNone,
  kAdd,
  kAdc,
  kSub,
  kSbb,
  kLogic,
  kInc,
  kDec,
  kNeg,
  kShl,
  kShr,
  kSar
};

inline constexpr uint64_t SizeMask(int size_log) {
  return size_log == 3 ? ~0ull : (1ull << (8u << size_log)) - 1;
}
inline constexpr uint64_t SignBit(int size_log) { return 1ull << ((8u << size_log) - 1); }

// PF: set when the low byte of the result has an even number of 1 bits.
inline constexpr bool EvenParity(uint64_t value) {
  return (__builtin_popcount(static_cast<uint8_t>(value)) & 1) == 0;
}

class Flags {
 public:
  // The whole RFLAGS with the arithmetic bits brought up to date.
  uint64_t Get() const { return (other_ & ~kArithFlags) | Arith(); }
  void Set(uint64_t rflags) {
    other_ = (rflags | kFixed1) & ~(1ull << 3 | 1ull << 5 | 1ull << 15 | ~0x3fffffull);
    op_ = FlagOp::kNone;
  }
  // Records an ALU result; `carry_in` is ADC/SBB's CF, or the CF that INC/DEC preserve.
  void Record(FlagOp op, int size_log, uint64_t dst, uint64_t src, uint64_t res,
              bool carry_in = false) {
    op_ = op;
    size_log_ = static_cast<uint8_t>(size_log);
    carry_in_ = carry_in;
    dst_ = dst;
    src_ = src;
    res_ = res;
  }
  // Writes the six arithmetic flags directly (mask selects which; others are unchanged).
  void SetArith(uint64_t values, uint64_t mask = kArithFlags) {
    // All six replaced (shifts, multiplies): the recorded operation need not be evaluated.
    const uint64_t current = mask == kArithFlags ? 0 : Arith();
    other_ = (other_ & ~kArithFlags) | (current & ~mask) | (values & mask);
    op_ = FlagOp::kNone;
  }

  bool cf() const { return (Arith() & kCf) != 0; }
  bool zf() const { return (Arith() & kZf) != 0; }
  bool sf() const { return (Arith() & kSf) != 0; }
  bool of() const { return (Arith() & kOf) != 0; }
  bool pf() const { return (Arith() & kPf) != 0; }
  bool df() const { return (other_ & kDf) != 0; }
  bool ifl() const { return (other_ & kIf) != 0; }
  bool tf() const { return (other_ & kTf) != 0; }
  bool ac() const { return (other_ & kAc) != 0; }
  // Non-arithmetic bits (DF, IF, ...) written in place.
  void SetBit(uint64_t bit, bool on) { other_ = on ? (other_ | bit) : (other_ & ~bit); }

  // Condition codes 0-15 as in Jcc/SETcc/CMOVcc (SDM Vol. 1 Appendix B).
  bool Condition(int cc) const {
    bool r;
    if ((cc >> 1) != 5 && op_ != FlagOp::kNone) {
      // Parity aside, a condition needs CF, ZF, SF or OF only: computed alone from the
      // recorded operation, without the whole six.
      const uint64_t mask = SizeMask(size_log_), sign = SignBit(size_log_);
      const uint64_t res = res_ & mask;
      const bool zf = res == 0, sf = (res & sign) != 0;
      if ((cc >> 1) == 2) return (cc & 1) ? !zf : zf;  // E / NE, the most common
      if ((cc >> 1) == 4) return (cc & 1) ? !sf : sf;  // S / NS
      const uint64_t d = dst_ & mask, s = src_ & mask;
      bool cf, of;
      if (op_ == FlagOp::kSub) {
        cf = d < s;
        of = ((d ^ s) & (d ^ res) & sign) != 0;
      } else if (op_ == FlagOp::kLogic) {
        cf = of = false;
      } else {
        CarryOverflow(d, s, res, &cf, &of);
      }
      switch (cc >> 1) {
        case 0:
          r = of;
          break;
        case 1:
          r = cf;
          break;
        case 3:
          r = cf || zf;
          break;
        case 6:
          r = sf != of;
          break;
        default:
          r = zf || sf != of;
          break;
      }
      return (cc & 1) ? !r : r;
    }
    const uint64_t f = Arith();
    switch (cc >> 1) {
      case 0:
        r = f & kOf;
        break;
      case 1:
        r = f & kCf;
        break;
      case 2:
        r = f & kZf;
        break;
      case 3:
        r = f & (kCf | kZf);
        break;
      case 4:
        r = f & kSf;
        break;
      case 5:
        r = f & kPf;
        break;
      case 6:
        r = !(f & kSf) != !(f & kOf);
        break;
      default:
        r = (f & kZf) || (!(f & kSf) != !(f & kOf));
        break;
    }
    return (cc & 1) ? !r : r;
  }

 private:
  // CF and OF of the recorded operation on its masked operands and result.
  void CarryOverflow(uint64_t d, uint64_t s, uint64_t r, bool* cf_out, bool* of_out) const {
    const uint64_t sign = SignBit(size_log_);
    const unsigned bits = 8u << size_log_;
    bool cf = false, of = false;
    switch (op_) {
      case FlagOp::kAdd:
        cf = r < d;
        of = ((d ^ r) & (s ^ r) & sign) != 0;
        break;
      case FlagOp::kAdc:
        cf = r < d || (carry_in_ && r == d);
        of = ((d ^ r) & (s ^ r) & sign) != 0;
        break;
      case FlagOp::kSub:
        cf = d < s;
        of = ((d ^ s) & (d ^ r) & sign) != 0;
        break;
      case FlagOp::kSbb:
        cf = d < s || (carry_in_ && d == s);
        of = ((d ^ s) & (d ^ r) & sign) != 0;
        break;
      case FlagOp::kInc:
        cf = carry_in_;
        of = r == sign;
        break;
      case FlagOp::kDec:
        cf = carry_in_;
        of = r == sign - 1;
        break;
      case FlagOp::kNeg:
        cf = s != 0;
        of = s == sign;
        break;
      // Shifts: d is the operand, s the masked count (1 or more). OF is defined for a count
      // of 1; for others this CPU gives MSB(r) ^ CF (SHL), MSB(r) ^ MSB-1(r) (SHR), 0 (SAR).
      case FlagOp::kShl:
        cf = s <= bits && ((d >> (bits - s)) & 1);
        of = ((r & sign) != 0) != cf;
        break;
      case FlagOp::kShr:
        cf = s <= bits && ((d >> (s - 1)) & 1);
        of = ((r >> (bits - 1)) & 1) != ((r >> (bits - 2)) & 1);
        break;
      case FlagOp::kSar: {
        const int shift = 64 - static_cast<int>(bits);
        const int64_t sd = static_cast<int64_t>(d << shift) >> shift;
        cf = (sd >> (s <= bits ? s - 1 : bits - 1)) & 1;
        break;
      }
      case FlagOp::kLogic:
      case FlagOp::kNone:
        break;
    }
    *cf_out = cf;
    *of_out = of;
  }

  uint64_t Arith() const {
    if (op_ == FlagOp::kNone) return other_ & kArithFlags;
    const uint64_t mask = SizeMask(size_log_);
    const uint64_t sign = SignBit(size_log_);
    const uint64_t d = dst_ & mask, s = src_ & mask, r = res_ & mask;
    bool cf, of;
    CarryOverflow(d, s, r, &cf, &of);
    uint64_t af = (d ^ s ^ r) & 0x10;
    if (op_ == FlagOp::kLogic) af = 0;  // undefined in the SDM; cleared on this CPU (harness)
    // Shifts: AF is undefined; this CPU sets it (differential harness).
    if (op_ == FlagOp::kShl || op_ == FlagOp::kShr || op_ == FlagOp::kSar) af = kAf;
    return (cf ? kCf : 0) | (EvenParity(r) ? kPf : 0) | af | (r == 0 ? kZf : 0) |
           ((r & sign) ? kSf : 0) | (of ? kOf : 0);
  }

  uint64_t other_ = kFixed1;  // every bit but the arithmetic ones when op_ != kNone
  uint64_t dst_ = 0, src_ = 0, res_ = 0;
  FlagOp op_ = FlagOp::kNone;
  uint8_t size_log_ = 0;
  bool carry_in_ = false;
};

}  // namespace vireo::emu
