// x87 control and SSE state instructions (SDM Vol. 1 ch. 8, 10.5; Vol. 2): FNINIT, FNCLEX,
// FLDCW/FNSTCW, FNSTSW (m16, AX), FWAIT (#NM, #MF on a pending unmasked exception), EMMS,
// FXSAVE/FXRSTOR (legacy and REX.W forms), LDMXCSR/STMXCSR, CLFLUSH and the fences (0F AE).
// The other D8-DF forms (arithmetic, loads and stores, environments) are insn_x87.cc's. State
// lives in CpuState::fx, the FXSAVE image itself.
#include "accel/emu/sse.h"

namespace vireo::emu {
namespace {

// FSW bits (SDM Vol. 1 8.1.3): exception flags IE..PE (0-5), SF, ES (summary), B (busy).
constexpr uint16_t kFswExceptions = 0x3f, kFswSf = 1u << 6, kFswEs = 1u << 7, kFswB = 1u << 15;

// x87 instructions: #NM when CR0.EM or CR0.TS is set (SDM Vol. 3 2.5, Table 2-2).
bool X87Unavailable(const CpuState& s) { return (s.cr0 & (kCr0Em | kCr0Ts)) != 0; }

bool X87Pending(const CpuState& s) { return (s.fx.fsw() & kFswEs) != 0; }

// FCW bits 6 (reads as 1), 7 and 13-15 are reserved: FLDCW keeps 0x1f3f | 0x40, as measured.
constexpr uint16_t kFcwBits = 0x1f3f, kFcwOne = 0x40;

}  // namespace

// ES and B follow the unmasked exception flags (SDM Vol. 1 8.1.3.1): this CPU recomputes
// them whenever FCW or FSW is loaded (FLDCW, FXRSTOR, XRSTOR). B mirrors ES since the 387.
void UpdateX87Summary(FxState& fx) {
  uint16_t fsw = fx.fsw() & ~(kFswEs | kFswB);
  if (fsw & kFswExceptions & ~fx.fcw()) fsw |= kFswEs | kFswB;
  fx.set_fsw(fsw);
}

namespace {

// TOP becomes 0 (FNINIT, EMMS): the image keeps ST(i) relative to TOP, so the slots rotate:
// new ST(i) = physical R(i) = old ST((i - TOP) mod 8).
void RotateToTopZero(FxState& fx) {
  const int top = (fx.fsw() >> 11) & 7;
  std::array<uint8_t, 128> st;
  for (int i = 0; i < 8; ++i) std::memcpy(&st[16 * i], fx.st((i - top + 8) & 7), 16);
  std::memcpy(fx.st(0), st.data(), st.size());
}

StepStatus X87Control(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  const uint8_t op = insn.opcode() & 0xff;
  const int digit = insn.group_op();
  const bool mem = !insn.is_reg_form();
  enum { kNone, kFldcw, kFnstcw, kFnstswMem, kFnstswAx, kFnclex, kFninit } which = kNone;
  if (op == 0xd9 && mem && digit == 5) which = kFldcw;
  if (op == 0xd9 && mem && digit == 7) which = kFnstcw;
  if (op == 0xdd && mem && digit == 7) which = kFnstswMem;
  if (op == 0xdf && insn.modrm() == 0xe0) which = kFnstswAx;
  if (op == 0xdb && insn.modrm() == 0xe2) which = kFnclex;
  if (op == 0xdb && insn.modrm() == 0xe3) which = kFninit;
  if (which == kNone) return X87Arithmetic(cpu, insn);
  if (X87Unavailable(s)) return cpu.Raise(kDeviceNotAvailable);
  // FLDCW is a waiting instruction: a pending unmasked exception is taken first (#MF).
  if (which == kFldcw && X87Pending(s)) return cpu.Raise(kMathFault);
  FxState& fx = s.fx;
  switch (which) {
    case kFldcw: {
      uint64_t v;
      if (!cpu.Read(insn.segment(), cpu.EffectiveAddress(insn), kSize16, &v, insn.address_size()))
        return cpu.MemoryFault();
      fx.set_fcw(static_cast<uint16_t>((v & kFcwBits) | kFcwOne));
      UpdateX87Summary(fx);
      break;
    }
    case kFnstcw:
    case kFnstswMem:
      if (!cpu.Write(insn.segment(), cpu.EffectiveAddress(insn), kSize16,
                     which == kFnstcw ? fx.fcw() : fx.fsw(), insn.address_size()))
        return cpu.MemoryFault();
      break;
    case kFnstswAx:
      cpu.SetGpr(kRax, kSize16, fx.fsw());
      break;
    case kFnclex:
      fx.set_fsw(fx.fsw() & ~(kFswExceptions | kFswSf | kFswEs | kFswB));
      break;
    default:  // FNINIT (SDM Vol. 1 Table 8-5): FCW 0x37f, FSW 0, all tags empty, pointers 0
      fx.set_fcw(0x37f);
      RotateToTopZero(fx);
      fx.set_fsw(0);
      fx.set_ftw(0);
      fx.Put<uint16_t>(FxState::kFop, 0);
      fx.Put<uint64_t>(FxState::kFip, 0);
      fx.Put<uint64_t>(FxState::kFdp, 0);
      break;
  }
  return StepStatus::kOk;
}

// 9B FWAIT: #NM when CR0.MP and CR0.TS are both set, then #MF for a pending unmasked x87
// exception (FSW.ES). The legacy CR0.NE=0 FERR# path is not modelled: #MF either way.
StepStatus Fwait(Interpreter& cpu, const DecodedInsn&) {
  const CpuState& s = cpu.state();
  if ((s.cr0 & kCr0Mp) && (s.cr0 & kCr0Ts)) return cpu.Raise(kDeviceNotAvailable);
  if (X87Pending(s)) return cpu.Raise(kMathFault);
  return StepStatus::kOk;
}

// 0F 77 EMMS: every x87 tag empty, and (as this CPU does, like the other MMX instructions)
// TOP = 0, so the image's ST(i) slots, kept relative to TOP, rotate. An MMX instruction: #UD with
// CR0.EM, #NM with CR0.TS, #MF with a pending x87 exception.
StepStatus Emms(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  // With 66/F2/F3 it is #UD on this CPU (harness-measured; the SDM lists only NP 0F 77).
  if (insn.mandatory_prefix() != sse::kNoPrefix) return cpu.Raise(kInvalidOpcode);
  if (s.cr0 & kCr0Em) return cpu.Raise(kInvalidOpcode);
  if (s.cr0 & kCr0Ts) return cpu.Raise(kDeviceNotAvailable);
  if (X87Pending(s)) return cpu.Raise(kMathFault);
  FxState& fx = s.fx;
  RotateToTopZero(fx);
  fx.set_fsw(fx.fsw() & ~(7u << 11));
  fx.set_ftw(0);
  return StepStatus::kOk;
}

// FXSAVE: the image as SDM Vol. 1 Table 10-2 (REX.W) / 10-1 lays it out, bytes 0-415 (16 XMM
// registers in 64-bit mode, 8 and bytes 0-287 elsewhere); the rest of the 512 bytes is left
// as it was, as this CPU does. This
// AMD CPU writes FOP/FIP/FDP only while FSW.ES is set (AMD APM Vol. 5 "FXSAVE"), zeros
// otherwise; the legacy form keeps only 32-bit offsets (selectors written as 0), FXSAVE64
// 57-bit ones.
StepStatus Fxsave(Interpreter& cpu, const DecodedInsn& insn, uint64_t ea) {
  const FxState& fx = cpu.state().fx;
  std::array<uint8_t, 416> out;
  std::memcpy(out.data(), fx.image.data(), out.size());
  out[5] = 0;
  const uint32_t mask = FxState::kMxcsrMask;  // what LDMXCSR/FXRSTOR accept, whatever was set
  std::memcpy(&out[FxState::kMxcsrMaskOffset], &mask, 4);
  if (!(fx.fsw() & kFswEs)) {
    std::memset(&out[FxState::kFop], 0, 18);  // FOP, FIP, FDP
  } else if (!insn.rex_w()) {
    std::memset(&out[FxState::kFip + 4], 0, 4);
    std::memset(&out[FxState::kFdp + 4], 0, 4);
  } else {
    // This CPU keeps 57-bit pointers (5-level linear addresses): stored sign-extended from
    // bit 56, as measured.
    for (size_t at : {FxState::kFip, FxState::kFdp}) {
      uint64_t v;
      std::memcpy(&v, &out[at], 8);
      v = static_cast<uint64_t>(static_cast<int64_t>(v << 7) >> 7);
      std::memcpy(&out[at], &v, 8);
    }
  }
  // Outside 64-bit mode only XMM0-7 exist: bytes 288-511 are not written.
  const size_t len = cpu.state().mode() == CpuMode::kLong64 ? out.size() : FxState::kXmm + 128;
  if (!cpu.WriteBytes(insn.segment(), ea, std::span(out).first(len), insn.address_size()))
    return cpu.MemoryFault();
  return StepStatus::kOk;
}

// FXRSTOR: MXCSR bits outside MXCSR_MASK are #GP(0) before anything loads.
StepStatus Fxrstor(Interpreter& cpu, const DecodedInsn& insn, uint64_t ea) {
  std::array<uint8_t, 512> in;
  if (!cpu.ReadBytes(insn.segment(), ea, in, insn.address_size())) return cpu.MemoryFault();
  uint32_t mxcsr;
  std::memcpy(&mxcsr, &in[FxState::kMxcsr], 4);
  if (mxcsr & ~FxState::kMxcsrMask) return cpu.Raise(kGeneralProtection, 0);
  FxState& fx = cpu.state().fx;
  std::memcpy(fx.image.data(), in.data(),
              cpu.state().mode() == CpuMode::kLong64 ? 416 : FxState::kXmm + 128);
  fx.image[5] = 0;
  if (!insn.rex_w()) {  // 32-bit offsets; the selectors are not kept
    std::memset(&fx.image[FxState::kFip + 4], 0, 4);
    std::memset(&fx.image[FxState::kFdp + 4], 0, 4);
  }
  for (int i = 0; i < 8; ++i) std::memset(fx.st(i) + 10, 0, 6);  // reserved halves
  UpdateX87Summary(fx);
  fx.Put<uint32_t>(FxState::kMxcsrMaskOffset, FxState::kMxcsrMask);
  return StepStatus::kOk;
}

// 0F AE: fences (register /5 /6 /7), FXSAVE /0, FXRSTOR /1, LDMXCSR /2, STMXCSR /3, CLFLUSH
// /7. XSAVE family, CLFLUSHOPT/CLWB and the F3 FS/GS base forms are not emulated.
StepStatus Group15(Interpreter& cpu, const DecodedInsn& insn) {
  const int digit = insn.group_op();
  if (insn.mandatory_prefix() != sse::kNoPrefix) return cpu.Unimplemented();
  if (insn.is_reg_form()) return digit >= 5 ? StepStatus::kOk : cpu.Unimplemented();
  CpuState& s = cpu.state();
  const uint64_t ea = cpu.EffectiveAddress(insn);
  switch (digit) {
    case 0:
    case 1:
      // SDM Vol. 2 "FXSAVE": #UD with CR0.EM, #NM with CR0.TS, #GP unless 16-byte aligned.
      if (s.cr0 & kCr0Em) return cpu.Raise(kInvalidOpcode);
      if (s.cr0 & kCr0Ts) return cpu.Raise(kDeviceNotAvailable);
      if (sse::Misaligned(cpu, insn, ea, sse::Align::kAlways))
        return cpu.Raise(kGeneralProtection, 0);
      return digit == 0 ? Fxsave(cpu, insn, ea) : Fxrstor(cpu, insn, ea);
    case 2: {  // LDMXCSR m32: reserved bits #GP(0)
      if (StepStatus st = sse::SseCheck(cpu); st != StepStatus::kOk) return st;
      uint64_t v;
      if (!cpu.Read(insn.segment(), ea, kSize32, &v, insn.address_size())) return cpu.MemoryFault();
      if (v & ~uint64_t{FxState::kMxcsrMask}) return cpu.Raise(kGeneralProtection, 0);
      s.fx.set_mxcsr(static_cast<uint32_t>(v));
      return StepStatus::kOk;
    }
    case 3:  // STMXCSR m32
      if (StepStatus st = sse::SseCheck(cpu); st != StepStatus::kOk) return st;
      if (!cpu.Write(insn.segment(), ea, kSize32, s.fx.mxcsr(), insn.address_size()))
        return cpu.MemoryFault();
      return StepStatus::kOk;
    case 7: {  // CLFLUSH: no cache to flush; faults like a byte read, an MMIO line is fine
      uint64_t v;
      if (!cpu.Read(insn.segment(), ea, kSize8, &v, insn.address_size())) {
        const StepStatus st = cpu.MemoryFault();
        return st == StepStatus::kMmio ? StepStatus::kOk : st;
      }
      return StepStatus::kOk;
    }
    default:
      return cpu.Unimplemented();
  }
}

}  // namespace

void RegisterFpu(HandlerTable& t) {
  for (int op = 0xd8; op <= 0xdf; ++op) t[op] = X87Control;
  t[0x9b] = Fwait;
  t[kMap0F | 0x77] = Emms;
  t[kMap0F | 0xae] = Group15;
}

}  // namespace vireo::emu
