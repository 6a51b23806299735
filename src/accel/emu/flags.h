// Lazy arithmetic flags (the blink idea): an ALU instruction records its operands, result
// and kind; CF/PF/AF/ZF/SF/OF are computed only when something reads them (Jcc, PUSHF,
// ADC, a register dump). Instructions whose flags are awkward to express that way (shifts,
// multiplies, bit scans) write the six flags eagerly with kNone.
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

enum class FlagOp : uint8_t { kNone, kAdd, kAdc, kSub, kSbb, kLogic, kInc, kDec, kNeg };

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
    // The common pairs straight from the recorded operands: a compare (SUB) or a logic op
    // (TEST/AND, OF = CF = 0) followed by a branch on Z, C, C|Z, S, or the signed orders.
    if (op_ == FlagOp::kSub || op_ == FlagOp::kLogic) {
      const uint64_t mask = SizeMask(size_log_);
      const uint64_t r = res_ & mask;
      const bool sub = op_ == FlagOp::kSub;
      const uint64_t d = dst_ & mask, s = src_ & mask;
      const int shift = 64 - (8 << size_log_);
      bool c;
      switch (cc >> 1) {
        case 1:  // B / AE
          c = sub && d < s;
          return (cc & 1) ? !c : c;
        case 2:  // E / NE
          return (cc & 1) ? r != 0 : r == 0;
        case 3:  // BE / A
          c = (sub && d < s) || r == 0;
          return (cc & 1) ? !c : c;
        case 4:  // S / NS
          c = (r & SignBit(size_log_)) != 0;
          return (cc & 1) ? !c : c;
        case 6:  // L / GE: SF != OF, which after SUB is the signed d < s
          c = sub ? static_cast<int64_t>(d << shift) < static_cast<int64_t>(s << shift)
                  : (r & SignBit(size_log_)) != 0;
          return (cc & 1) ? !c : c;
        case 7:  // LE / G
          c = r == 0 || (sub ? static_cast<int64_t>(d << shift) < static_cast<int64_t>(s << shift)
                             : (r & SignBit(size_log_)) != 0);
          return (cc & 1) ? !c : c;
        default:
          break;
      }
    }
    const uint64_t f = Arith();
    bool r;
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
  uint64_t Arith() const {
    if (op_ == FlagOp::kNone) return other_ & kArithFlags;
    const uint64_t mask = SizeMask(size_log_);
    const uint64_t sign = SignBit(size_log_);
    const uint64_t d = dst_ & mask, s = src_ & mask, r = res_ & mask;
    bool cf = false, of = false;
    uint64_t af = (d ^ s ^ r) & 0x10;
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
      case FlagOp::kLogic:
        af = 0;  // undefined in the SDM; cleared on this CPU (differential harness)
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
      case FlagOp::kNone:
        break;
    }
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
