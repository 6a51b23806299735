// Debug registers, the machine-status/extended control registers and cache control:
// MOV DR0-7, LMSW/SMSW, XGETBV/XSETBV, CLTS, INVD/WBINVD (SDM Vol. 2). Privilege checks
// come before operand checks, and a fault changes nothing.
#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

// XCR0 bits this CPU accepts: x87 (must be 1), SSE, AVX (SDM Vol. 1 13.3). AVX state is
// accepted so a kernel that CPUID tells about AVX can enable it; the AVX instructions
// themselves are not emulated.
constexpr uint64_t kXcr0X87 = 1, kXcr0Sse = 2, kXcr0Avx = 4;
constexpr uint64_t kXcr0Supported = kXcr0X87 | kXcr0Sse | kXcr0Avx;

// 0F 21 / 0F 23: MOV r, DRn / MOV DRn, r. DR4/DR5 are DR6/DR7 unless CR4.DE (then #UD).
StepStatus MovDr(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  int dr = insn.reg();
  if (dr > 7 || ((dr == 4 || dr == 5) && (s.cr4 & kCr4De))) return cpu.Raise(kInvalidOpcode);
  if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
  if (dr == 4 || dr == 5) dr += 2;
  const int size = s.mode() == CpuMode::kLong64 ? kSize64 : kSize32;
  if ((insn.opcode() & 0xff) == 0x21) {
    cpu.SetGpr(insn.rm(), size, s.dr[dr]);
    return StepStatus::kOk;
  }
  const uint64_t v = cpu.Gpr(insn.rm(), size);
  switch (dr) {
    case 6:
    case 7:
      if (v >> 32) return cpu.Raise(kGeneralProtection, 0);  // upper half is reserved
      // DR6 bits 4-11 and 16-31 read as 1, bit 12 as 0; DR7 bit 10 as 1, 11/12/14/15 as 0.
      s.dr[dr] = dr == 6 ? (v & 0xe00f) | 0xffff0ff0 : (v & 0xffff23ff) | 0x400;
      return StepStatus::kOk;
    default:
      s.dr[dr] = v;
      return StepStatus::kOk;
  }
}

// 0F 06 CLTS clears CR0.TS; 0F 08 INVD and 0F 09 WBINVD have no cache to act on here.
// All three are CPL0 only.
StepStatus CltsInvd(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
  if ((insn.opcode() & 0xff) == 0x06) s.cr0 &= ~uint64_t{1u << 3};
  return StepStatus::kOk;
}

}  // namespace

// 0F 01 /6: LMSW r/m16 loads CR0.PE/MP/EM/TS; it can set PE but never clear it.
StepStatus Lmsw(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
  uint64_t v;
  if (!cpu.ReadRm(insn, kSize16, &v)) return cpu.MemoryFault();
  const uint64_t cr0 = (s.cr0 & ~uint64_t{0xe}) | (v & 0xf);
  if ((cr0 ^ s.cr0) & kCr0Pe) cpu.FlushTlb(true);
  s.cr0 = cr0;
  return StepStatus::kOk;
}

// 0F 01 /4: SMSW stores CR0: 16 bits to memory, the operand size to a register (the upper
// bits are CR0's on current CPUs). Any CPL (UMIP is not modelled).
StepStatus Smsw(Interpreter& cpu, const DecodedInsn& insn) {
  const int size = insn.is_reg_form() ? OpSize(insn) : kSize16;
  if (!cpu.WriteRm(insn, size, cpu.state().cr0)) return cpu.MemoryFault();
  return StepStatus::kOk;
}

// 0F 01 D0 XGETBV / D1 XSETBV: need CR4.OSXSAVE (#UD); ECX selects XCR0 (others #GP(0)).
StepStatus XgetbvXsetbv(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  if (!(s.cr4 & kCr4Osxsave)) return cpu.Raise(kInvalidOpcode);
  const bool set = (insn.modrm() & 7) == 1;
  if (set && s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
  if (static_cast<uint32_t>(s.gpr[kRcx]) != 0) return cpu.Raise(kGeneralProtection, 0);
  if (!set) {
    cpu.SetGpr(kRax, kSize32, s.xcr0 & 0xffffffff);
    cpu.SetGpr(kRdx, kSize32, s.xcr0 >> 32);
    return StepStatus::kOk;
  }
  const uint64_t v = (s.gpr[kRdx] << 32) | (s.gpr[kRax] & 0xffffffff);
  // x87 state cannot be disabled, AVX needs SSE, and unsupported bits are refused.
  if (!(v & kXcr0X87) || (v & ~kXcr0Supported) || ((v & kXcr0Avx) && !(v & kXcr0Sse)))
    return cpu.Raise(kGeneralProtection, 0);
  s.xcr0 = v;
  return StepStatus::kOk;
}

void RegisterControlRegs(HandlerTable& t) {
  t[kMap0F | 0x21] = t[kMap0F | 0x23] = MovDr;
  t[kMap0F | 0x06] = t[kMap0F | 0x08] = t[kMap0F | 0x09] = CltsInvd;
}

}  // namespace vireo::emu
