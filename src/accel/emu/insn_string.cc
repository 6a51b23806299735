// String instructions MOVS/CMPS/STOS/LODS/SCAS with REP/REPE/REPNE and the direction flag
// (SDM Vol. 2 "REP/REPE/REPZ/REPNE/REPNZ"). A REP instruction runs at most kRepBatch
// iterations per Step and then stays on the same RIP, so a long REP cannot starve the run
// loop (the guest drives the count: rule 3); a fault mid-way leaves rCX/rSI/rDI at the
// iteration that faulted, as on hardware. An iteration that reaches MMIO ends the step, so
// each MMIO exit carries one access (as KVM's emulator does).
#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

constexpr uint64_t kRepBatch = 4096;

enum class StringOp { kMovs, kCmps, kStos, kLods, kScas };

StringOp OpOf(uint16_t opcode) {
  switch (opcode & 0xfe) {
    case 0xa4:
      return StringOp::kMovs;
    case 0xa6:
      return StringOp::kCmps;
    case 0xaa:
      return StringOp::kStos;
    case 0xac:
      return StringOp::kLods;
    default:
      return StringOp::kScas;
  }
}

StepStatus StringInsn(Interpreter& cpu, const DecodedInsn& insn) {
  const StringOp op = OpOf(insn.opcode());
  const int size = OpSize(insn);
  const int asize = insn.address_size();
  const uint64_t amask = SizeMask(asize);
  const bool rep = insn.rep() || insn.repne();
  CpuState& s = cpu.state();
  const uint64_t step = (s.flags.df() ? ~uint64_t{0} : 1) * (uint64_t{1} << size);
  const Seg src_seg = insn.segment();  // DS unless overridden; ES:rDI is not overridable
  for (uint64_t n = 0;; ++n) {
    if (rep) {
      if ((s.gpr[kRcx] & amask) == 0) return StepStatus::kOk;
      if (n == kRepBatch) {
        cpu.Branch(s.rip, kSize64);  // come back to this instruction
        return StepStatus::kOk;
      }
    }
    const uint64_t rsi = s.gpr[kRsi] & amask, rdi = s.gpr[kRdi] & amask;
    uint64_t a = 0, b = 0;
    bool cmp = false;
    switch (op) {
      case StringOp::kMovs:
        if (!cpu.Read(src_seg, rsi, size, &a, asize) || !cpu.Write(kEs, rdi, size, a, asize))
          return cpu.MemoryFault();
        break;
      case StringOp::kStos:
        if (!cpu.Write(kEs, rdi, size, cpu.Gpr(kRax, size), asize)) return cpu.MemoryFault();
        break;
      case StringOp::kLods:
        if (!cpu.Read(src_seg, rsi, size, &a, asize)) return cpu.MemoryFault();
        cpu.SetGpr(kRax, size, a);
        break;
      case StringOp::kCmps:
        if (!cpu.Read(src_seg, rsi, size, &a, asize) || !cpu.Read(kEs, rdi, size, &b, asize))
          return cpu.MemoryFault();
        cmp = true;
        break;
      case StringOp::kScas:
        a = cpu.Gpr(kRax, size);
        if (!cpu.Read(kEs, rdi, size, &b, asize)) return cpu.MemoryFault();
        cmp = true;
        break;
    }
    if (cmp) s.flags.Record(FlagOp::kSub, size, a, b, (a - b) & SizeMask(size));
    if (op == StringOp::kMovs || op == StringOp::kLods || op == StringOp::kCmps)
      cpu.SetGpr(kRsi, asize, rsi + step);
    if (op != StringOp::kLods) cpu.SetGpr(kRdi, asize, rdi + step);
    if (!rep) return StepStatus::kOk;
    cpu.SetGpr(kRcx, asize, (s.gpr[kRcx] - 1) & amask);
    // REPE/REPNE end on the comparison too (only for CMPS/SCAS).
    if (cmp && (insn.rep() ? !s.flags.zf() : s.flags.zf())) return StepStatus::kOk;
    // One MMIO access per exit: stop after this iteration and come back for the rest.
    if (cpu.touched_mmio()) {
      if ((s.gpr[kRcx] & amask) != 0) cpu.Branch(s.rip, kSize64);
      return StepStatus::kOk;
    }
  }
}

}  // namespace

void RegisterString(HandlerTable& t) {
  for (int op : {0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf}) t[op] = StringInsn;
}

}  // namespace vireo::emu
