#include "accel/emu/decoder.h"

#include <algorithm>

#include "accel/emu/opcode_table.h"

namespace vireo::emu {
namespace {

// 16-bit ModRM address forms (SDM Vol. 2 Table 2-1): base and index per rm.
constexpr uint8_t kRegBx = 3, kRegBp = 5, kRegSi = 6, kRegDi = 7;
constexpr uint8_t kBase16[8] = {kRegBx, kRegBx, kRegBp, kRegBp, kNoReg, kNoReg, kRegBp, kRegBx};
constexpr uint8_t kIndex16[8] = {kRegSi, kRegDi, kRegSi, kRegDi, kRegSi, kRegDi, kNoReg, kNoReg};

class Cursor {
 public:
  Cursor(const uint8_t* bytes, size_t available)
      : bytes_(bytes), limit_(std::min(available, kMaxInsnLength)) {}

  // kOk when n more bytes can be read; otherwise why not (15-byte limit first: SDM 2.3.11).
  DecodeStatus Need(size_t n) const {
    if (pos_ + n > kMaxInsnLength) return DecodeStatus::kTooLong;
    if (pos_ + n > limit_) return DecodeStatus::kTruncated;
    return DecodeStatus::kOk;
  }
  uint8_t Peek() const { return bytes_[pos_]; }
  uint8_t Byte() { return bytes_[pos_++]; }
  // Little-endian, n = 1, 2, 4 or 8 bytes; caller has checked Need(n).
  uint64_t Unsigned(size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{bytes_[pos_ + i]} << (8 * i);
    pos_ += n;
    return v;
  }
  int64_t Signed(size_t n) {
    uint64_t v = Unsigned(n);
    int shift = 64 - 8 * static_cast<int>(n);
    return static_cast<int64_t>(v << shift) >> shift;
  }
  size_t pos() const { return pos_; }

 private:
  const uint8_t* bytes_;
  size_t limit_;
  size_t pos_ = 0;
};

#define VIREO_NEED(cursor, n)                                   \
  do {                                                          \
    DecodeStatus need_status_ = (cursor).Need(n);               \
    if (need_status_ != DecodeStatus::kOk) return need_status_; \
  } while (0)

}  // namespace

DecodeStatus Decoder::Decode(const uint8_t* bytes, size_t available, CpuMode mode,
                             DecodedInsn* out) {
  DecodedInsn& d = *out;
  d = DecodedInsn{};
  Cursor c(bytes, available);
  const bool long64 = mode == CpuMode::kLong64;

  // Legacy prefixes in any order and number; a REX counts only when it is the last prefix
  // before the opcode (SDM Vol. 2 2.2.1): any legacy prefix after it cancels it.
  uint8_t seg = 0xff;
  for (;;) {
    VIREO_NEED(c, 1);
    uint8_t b = c.Peek();
    if (long64 && (b & 0xf0) == 0x40) {
      d.rex_ = b;
      c.Byte();
      continue;
    }
    switch (b) {
      case 0x26:
      case 0x2e:
      case 0x36:
      case 0x3e:
        // In 64-bit mode ES/CS/SS/DS overrides are ignored (AMD APM Vol. 3 1.2.4).
        if (!long64) seg = (b >> 3) & 3;
        break;
      case 0x64:
        seg = kFs;
        break;
      case 0x65:
        seg = kGs;
        break;
      case 0x66:
        d.p66_ = true;
        break;
      case 0x67:
        d.p67_ = true;
        break;
      case 0xf0:
        d.lock_ = true;
        break;
      case 0xf2:
        d.repne_ = true;
        d.rep_ = false;
        break;
      case 0xf3:
        d.rep_ = true;
        d.repne_ = false;
        break;
      default:
        goto opcode;
    }
    c.Byte();
    d.rex_ = 0;
    ++d.prefix_count_;
  }

opcode:
  if (d.rex_ != 0) ++d.prefix_count_;
  d.mandatory_ = d.repne_ ? 3 : d.rep_ ? 2 : d.p66_ ? 1 : 0;
  uint16_t op = c.Byte();
  if (op == 0x0f) {
    VIREO_NEED(c, 1);
    op = c.Byte();
    if (op == 0x38 || op == 0x3a) {
      uint16_t map = op == 0x38 ? kMap0F38 : kMap0F3A;
      VIREO_NEED(c, 1);
      op = map | c.Byte();
    } else {
      op |= kMap0F;
    }
  }
  d.opcode_ = op;
  d.length_ = static_cast<uint8_t>(c.pos());
  const OpcodeInfo info = DecodeTable()[op];
  if (info.undefined || (long64 && info.invalid64)) return DecodeStatus::kUndefined;

  // Operand and address size (SDM Vol. 1 3.6 and Vol. 2 2.2.1.2).
  const bool rex_w = (d.rex_ & 8) != 0;
  uint8_t osize;
  uint8_t asize;
  switch (mode) {
    case CpuMode::kLong64:
      osize = rex_w ? kSize64 : d.p66_ ? kSize16 : kSize32;
      asize = d.p67_ ? kSize32 : kSize64;
      break;
    case CpuMode::kProtected32:
      osize = d.p66_ ? kSize16 : kSize32;
      asize = d.p67_ ? kSize16 : kSize32;
      break;
    case CpuMode::kReal16:
    default:
      osize = d.p66_ ? kSize32 : kSize16;
      asize = d.p67_ ? kSize32 : kSize16;
      break;
  }
  // Stack operations and near branches are 64-bit in 64-bit mode; 66 makes them 16-bit.
  // For near branches that is AMD's behaviour (this CPU); Intel ignores 66 there.
  auto make_default64 = [&] {
    if (long64) osize = rex_w ? kSize64 : d.p66_ ? kSize16 : kSize64;
  };
  if (info.default64 || info.branch64) make_default64();

  d.seg_ = kDs;
  if (info.modrm) {
    VIREO_NEED(c, 1);
    const uint8_t modrm = c.Byte();
    d.has_modrm_ = true;
    d.modrm_ = modrm;
    const uint8_t mod = modrm >> 6;
    const uint8_t reg = (modrm >> 3) & 7;
    d.reg_ = reg | ((d.rex_ & 4) << 1);
    d.rm_ = (modrm & 7) | ((d.rex_ & 1) << 3);
    if (info.modrm_reg_only) d.modrm_ |= 0xc0;  // MOV CR/DR: mod is ignored (SDM MOV-CR)

    // Opcodes whose /digit changes validity or size.
    switch (op) {
      case 0x8f:  // POP Ev is /0; other /digits are XOP on AMD
        if (reg != 0) return DecodeStatus::kUndefined;
        break;
      case 0xc4:
      case 0xc5:
      case 0x62:  // LES/LDS/BOUND with a register operand are VEX/EVEX: not emulated
        if (mod == 3) return DecodeStatus::kUndefined;
        break;
      case 0xfe:
        if (reg >= 2) return DecodeStatus::kUndefined;
        break;
      case 0xff:
        if (reg == 7) return DecodeStatus::kUndefined;
        if (reg == 2 || reg == 4 || reg == 6) make_default64();
        break;
      default:
        break;
    }

    if (mod != 3 && !info.modrm_reg_only) {
      const uint8_t rm = modrm & 7;
      if (asize == kSize16) {
        if (mod == 0 && rm == 6) {
          VIREO_NEED(c, 2);
          d.disp_ = static_cast<int32_t>(c.Signed(2));
        } else {
          d.base_ = kBase16[rm];
          d.index_ = kIndex16[rm];
          if (d.base_ == kRegBp) d.seg_ = kSs;
          if (mod == 1) {
            VIREO_NEED(c, 1);
            d.disp_ = static_cast<int32_t>(c.Signed(1));
          } else if (mod == 2) {
            VIREO_NEED(c, 2);
            d.disp_ = static_cast<int32_t>(c.Signed(2));
          }
        }
      } else {
        bool disp32 = mod == 2;
        if (rm == 4) {
          VIREO_NEED(c, 1);
          const uint8_t sib = c.Byte();
          d.has_sib_ = true;
          d.scale_ = sib >> 6;
          const uint8_t index = ((sib >> 3) & 7) | ((d.rex_ & 2) << 2);
          d.index_ = index == 4 ? kNoReg : index;  // RSP cannot be an index; R12 can
          const uint8_t base = sib & 7;
          if (base == 5 && mod == 0) {
            disp32 = true;  // no base
          } else {
            d.base_ = base | ((d.rex_ & 1) << 3);
          }
        } else if (rm == 5 && mod == 0) {
          disp32 = true;
          if (long64) d.base_ = kRipReg;
        } else {
          d.base_ = rm | ((d.rex_ & 1) << 3);
        }
        if (d.base_ == 4 || d.base_ == 5) d.seg_ = kSs;
        if (mod == 1) {
          VIREO_NEED(c, 1);
          d.disp_ = static_cast<int32_t>(c.Signed(1));
        } else if (disp32) {
          VIREO_NEED(c, 4);
          d.disp_ = static_cast<int32_t>(c.Signed(4));
        }
      }
    }
  }
  if (seg != 0xff) {
    d.seg_ = seg;
    d.seg_override_ = true;
  }
  if (d.lock_ && (!d.has_memory_operand() || !LockAllowed(op, d.group_op()))) {
    d.length_ = static_cast<uint8_t>(c.pos());
    return DecodeStatus::kUndefined;
  }

  // Immediates.
  const size_t z = osize == kSize16 ? 2 : 4;
  auto read_signed = [&](size_t n) -> DecodeStatus {
    VIREO_NEED(c, n);
    d.imm_ = static_cast<uint64_t>(c.Signed(n));
    d.imm_size_ = static_cast<uint8_t>(n);
    return DecodeStatus::kOk;
  };
  auto read_unsigned = [&](size_t n) -> DecodeStatus {
    VIREO_NEED(c, n);
    d.imm_ = c.Unsigned(n);
    d.imm_size_ = static_cast<uint8_t>(n);
    return DecodeStatus::kOk;
  };
  DecodeStatus status = DecodeStatus::kOk;
  switch (info.imm) {
    case ImmKind::kNone:
      break;
    case ImmKind::kIb:
    case ImmKind::kJb:
      status = read_signed(1);
      break;
    case ImmKind::kIw:
      status = read_unsigned(2);
      break;
    case ImmKind::kIz:
    case ImmKind::kJz:
      status = read_signed(z);
      break;
    case ImmKind::kIv:
      status = read_unsigned(size_t{1} << osize);
      break;
    case ImmKind::kIwIb:
      VIREO_NEED(c, 3);
      d.imm_ = c.Unsigned(2);
      d.imm2_ = static_cast<uint16_t>(c.Unsigned(1));
      d.imm_size_ = 2;
      break;
    case ImmKind::kMoffs:
      d.has_moffs_ = true;
      status = read_unsigned(size_t{1} << asize);
      break;
    case ImmKind::kGroup3:
      if (d.group_op() <= 1) status = read_signed(info.byte_op ? 1 : z);
      break;
    case ImmKind::kFarPtr:
      VIREO_NEED(c, z + 2);
      d.imm_ = c.Unsigned(z);
      d.imm2_ = static_cast<uint16_t>(c.Unsigned(2));
      d.imm_size_ = static_cast<uint8_t>(z);
      break;
  }
  if (status != DecodeStatus::kOk) return status;
  d.osize_ = info.byte_op ? uint8_t{kSize8} : osize;
  d.asize_ = asize;
  d.length_ = static_cast<uint8_t>(c.pos());
  return DecodeStatus::kOk;
}

}  // namespace vireo::emu
