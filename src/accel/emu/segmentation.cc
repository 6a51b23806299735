#include "accel/emu/segmentation.h"

namespace vireo::emu {
namespace {

constexpr uint64_t kAccessed = uint64_t{1} << 40;  // descriptor type bit 0 (SDM Vol. 3 3.4.5.1)

bool Canonical(uint64_t v) {
  return static_cast<uint64_t>(static_cast<int64_t>(v << 16) >> 16) == v;
}

uint16_t ErrorCode(uint16_t selector) { return selector & 0xfffc; }

// Sets the accessed bit of `selector`'s descriptor (an implicit supervisor write).
bool MarkAccessed(Interpreter& cpu, uint16_t selector, uint64_t descriptor) {
  if (descriptor & kAccessed) return true;
  const CpuState& s = cpu.state();
  const uint64_t table = (selector & 4) ? s.ldtr.base : s.gdtr.base;
  const uint64_t d = descriptor | kAccessed;
  return cpu.SystemWrite(table + (selector & ~7u), &d, 8);
}

bool IsGateOrTss(const CpuState& s, uint8_t type) {
  // Legacy: 16/32-bit TSS, call gates, task gate; IA-32e: only the 64-bit call gate.
  if (s.long_mode()) return type == 0xc;
  return type == 1 || type == 3 || type == 4 || type == 5 || type == 9 || type == 0xb ||
         type == 0xc;
}

// The checks a far JMP/CALL (return = false) or RET (true) makes on the target code
// segment; SDM Vol. 2 "JMP"/"CALL" (direct code segment) and "RET" (protected mode).
StepStatus CheckCodeTarget(Interpreter& cpu, uint16_t selector, bool is_return, int rpl_or_cpl,
                           uint64_t* descriptor, accel::Segment* out) {
  CpuState& s = cpu.state();
  if (ErrorCode(selector) == 0) return cpu.Raise(kGeneralProtection, 0);
  if (!cpu.ReadDescriptor(selector, descriptor)) return cpu.MemoryFault();
  accel::Segment cs = SegmentFrom(s, selector, *descriptor);
  if (!cs.s) {
    if (!is_return && IsGateOrTss(s, cs.type)) return cpu.Unimplemented();  // gates, tasks
    return cpu.Raise(kGeneralProtection, ErrorCode(selector));
  }
  if (!(cs.type & 8)) return cpu.Raise(kGeneralProtection, ErrorCode(selector));
  const int rpl = selector & 3;
  if (cs.type & 4) {
    // Conforming: DPL <= CPL (JMP/CALL) or DPL <= RPL (RET).
    if (cs.dpl > rpl_or_cpl) return cpu.Raise(kGeneralProtection, ErrorCode(selector));
  } else if (is_return ? cs.dpl != rpl : (rpl > rpl_or_cpl || cs.dpl != rpl_or_cpl)) {
    return cpu.Raise(kGeneralProtection, ErrorCode(selector));
  }
  if (!cs.present) return cpu.Raise(kSegmentNotPresent, ErrorCode(selector));
  // L and D together are reserved in IA-32e mode (SDM Vol. 3 5.2.1).
  if (cs.l && cs.db) return cpu.Raise(kGeneralProtection, ErrorCode(selector));
  *out = cs;
  return StepStatus::kOk;
}

// The new RIP must be canonical (64-bit target) or inside the new CS limit: #GP(0).
bool TargetOk(const accel::Segment& cs, uint64_t offset) {
  return cs.l ? Canonical(offset) : offset <= cs.limit;
}

}  // namespace

accel::Segment RealModeSegment(uint16_t selector, bool code) {
  accel::Segment s;
  s.selector = selector;
  s.base = uint64_t{selector} << 4;
  s.limit = 0xffff;
  s.type = code ? 0xb : 0x3;
  s.s = s.present = true;
  return s;
}

accel::Segment SegmentFrom(const CpuState& state, uint16_t selector, uint64_t descriptor) {
  accel::Segment s = Interpreter::CodeSegmentFrom(selector, descriptor);
  if (!state.long_mode()) s.l = false;
  return s;
}

StepStatus CheckSegmentLoad(Interpreter& cpu, Seg seg, uint16_t selector, accel::Segment* out) {
  CpuState& s = cpu.state();
  if (!(s.cr0 & kCr0Pe)) {
    // Real mode: only the selector and base change; limit and attributes stay, so a
    // segment keeps a limit set in protected mode ("unreal mode").
    accel::Segment r = s.seg[seg];
    r.selector = selector;
    r.base = uint64_t{selector} << 4;
    r.unusable = false;
    r.present = true;
    *out = r;
    return StepStatus::kOk;
  }
  const int cpl = s.cpl();
  const int rpl = selector & 3;
  if (ErrorCode(selector) == 0) {
    // A null SS is #GP(0), except in 64-bit mode at CPL < 3 with RPL = CPL (SDM "MOV").
    if (seg == kSs && !(s.mode() == CpuMode::kLong64 && cpl < 3 && rpl == cpl))
      return cpu.Raise(kGeneralProtection, 0);
    accel::Segment null;
    null.selector = selector;
    null.unusable = true;
    null.dpl = static_cast<uint8_t>(seg == kSs ? cpl : 0);
    *out = null;
    return StepStatus::kOk;
  }
  uint64_t d;
  if (!cpu.ReadDescriptor(selector, &d)) return cpu.MemoryFault();
  accel::Segment r = SegmentFrom(s, selector, d);
  const bool code = r.type & 8;
  if (seg == kSs) {
    // SS: a writable data segment with RPL = DPL = CPL; not present is #SS(selector).
    if (rpl != cpl || !r.s || code || !(r.type & 2) || r.dpl != cpl)
      return cpu.Raise(kGeneralProtection, ErrorCode(selector));
    if (!r.present) return cpu.Raise(kStackFault, ErrorCode(selector));
  } else {
    // DS ES FS GS: data or readable code; unless conforming code, max(CPL, RPL) <= DPL.
    if (!r.s || (code && !(r.type & 2))) return cpu.Raise(kGeneralProtection, ErrorCode(selector));
    const bool conforming = code && (r.type & 4);
    if (!conforming && (rpl > r.dpl || cpl > r.dpl))
      return cpu.Raise(kGeneralProtection, ErrorCode(selector));
    if (!r.present) return cpu.Raise(kSegmentNotPresent, ErrorCode(selector));
  }
  if (!MarkAccessed(cpu, selector, d)) return cpu.MemoryFault();
  r.type |= 1;
  *out = r;
  return StepStatus::kOk;
}

StepStatus LoadSegment(Interpreter& cpu, Seg seg, uint16_t selector) {
  accel::Segment r;
  const StepStatus st = CheckSegmentLoad(cpu, seg, selector, &r);
  if (st != StepStatus::kOk) return st;
  cpu.state().seg[seg] = r;
  if (seg == kSs) cpu.state().interrupt_shadow = true;  // SDM Vol. 3 6.8.3
  return StepStatus::kOk;
}

StepStatus FarTransfer(Interpreter& cpu, uint16_t selector, uint64_t offset, int size, bool call) {
  CpuState& s = cpu.state();
  const uint64_t saved_rsp = s.gpr[kRsp];
  const uint16_t old_cs = s.seg[kCs].selector;
  const uint64_t return_rip = cpu.next_rip();
  accel::Segment cs;
  if (!(s.cr0 & kCr0Pe)) {
    cs = s.seg[kCs];
    cs.selector = selector;
    cs.base = uint64_t{selector} << 4;
    offset &= SizeMask(size);
    if (offset > cs.limit) return cpu.Raise(kGeneralProtection, 0);
  } else {
    uint64_t d;
    const StepStatus st = CheckCodeTarget(cpu, selector, false, s.cpl(), &d, &cs);
    if (st != StepStatus::kOk) return st;
    if (!cs.l) offset &= SizeMask(size);
    if (!TargetOk(cs, offset)) return cpu.Raise(kGeneralProtection, 0);
    if (!MarkAccessed(cpu, selector, d)) return cpu.MemoryFault();
    cs.type |= 1;
    // No privilege change through a code segment: CPL stays, and so does RPL (= CPL).
    cs.selector = static_cast<uint16_t>((selector & 0xfffc) | s.cpl());
    cs.dpl = static_cast<uint8_t>(s.cpl());
  }
  if (call && (!cpu.Push(size, old_cs) || !cpu.Push(size, return_rip))) {
    s.gpr[kRsp] = saved_rsp;
    return cpu.MemoryFault();
  }
  s.seg[kCs] = cs;
  cpu.Branch(offset, cs.l ? kSize64 : size);
  return StepStatus::kOk;
}

StepStatus FarReturn(Interpreter& cpu, int size, uint16_t release) {
  CpuState& s = cpu.state();
  const int ss_size = cpu.StackSizeLog();
  const uint64_t bytes = uint64_t{1} << size;
  const uint64_t rsp = s.gpr[kRsp];
  uint64_t offset, raw_sel;
  if (!cpu.Read(kSs, rsp, size, &offset, ss_size) ||
      !cpu.Read(kSs, rsp + bytes, size, &raw_sel, ss_size))
    return cpu.MemoryFault();
  const uint16_t selector = static_cast<uint16_t>(raw_sel);
  const uint64_t after = rsp + 2 * bytes + release;
  if (!(s.cr0 & kCr0Pe)) {
    accel::Segment cs = s.seg[kCs];
    cs.selector = selector;
    cs.base = uint64_t{selector} << 4;
    if (offset > cs.limit) return cpu.Raise(kGeneralProtection, 0);
    s.seg[kCs] = cs;
    cpu.SetGpr(kRsp, ss_size, after);
    cpu.Branch(offset, size);
    return StepStatus::kOk;
  }
  const int cpl = s.cpl();
  const int rpl = selector & 3;
  if (ErrorCode(selector) != 0 && rpl < cpl)
    return cpu.Raise(kGeneralProtection, ErrorCode(selector));
  uint64_t d;
  accel::Segment cs;
  StepStatus st = CheckCodeTarget(cpu, selector, true, rpl, &d, &cs);
  if (st != StepStatus::kOk) return st;
  if (!TargetOk(cs, offset)) return cpu.Raise(kGeneralProtection, 0);
  accel::Segment ss = s.seg[kSs];
  uint64_t new_rsp = after;
  if (rpl > cpl) {
    // Return to an outer level: SS:rSP follow the return address (SDM Vol. 2 "RET").
    uint64_t esp, raw_ss;
    if (!cpu.Read(kSs, after, size, &esp, ss_size) ||
        !cpu.Read(kSs, after + bytes, size, &raw_ss, ss_size))
      return cpu.MemoryFault();
    const uint16_t ss_sel = static_cast<uint16_t>(raw_ss);
    if (ErrorCode(ss_sel) == 0) {
      // Only a 64-bit return below CPL3 may take a null SS.
      if (!cs.l || rpl == 3) return cpu.Raise(kGeneralProtection, 0);
      ss = {};
      ss.selector = ss_sel;
      ss.unusable = true;
      ss.dpl = static_cast<uint8_t>(rpl);
    } else {
      if ((ss_sel & 3) != rpl) return cpu.Raise(kGeneralProtection, ErrorCode(ss_sel));
      uint64_t sd;
      if (!cpu.ReadDescriptor(ss_sel, &sd)) return cpu.MemoryFault();
      ss = SegmentFrom(s, ss_sel, sd);
      if (!ss.s || (ss.type & 0xa) != 2 || ss.dpl != rpl)
        return cpu.Raise(kGeneralProtection, ErrorCode(ss_sel));
      if (!ss.present) return cpu.Raise(kStackFault, ErrorCode(ss_sel));
      if (!MarkAccessed(cpu, ss_sel, sd)) return cpu.MemoryFault();
      ss.type |= 1;
    }
    new_rsp = esp + release;
  }
  if (!MarkAccessed(cpu, selector, d)) return cpu.MemoryFault();
  cs.type |= 1;
  cs.selector = selector;
  cs.dpl = static_cast<uint8_t>(rpl);  // CPL = RPL, conforming segments included
  s.seg[kCs] = cs;
  if (rpl > cpl) {
    s.seg[kSs] = ss;
    s.gpr[kRsp] = cs.l    ? new_rsp
                  : ss.db ? new_rsp & 0xffffffff
                          : (rsp & ~0xffffull) | (new_rsp & 0xffff);
    DropInaccessibleSegments(s, rpl);
  } else {
    cpu.SetGpr(kRsp, ss_size, new_rsp);
  }
  cpu.Branch(offset, cs.l ? kSize64 : size);
  return StepStatus::kOk;
}

void DropInaccessibleSegments(CpuState& state, int new_cpl) {
  for (Seg seg : {kEs, kDs, kFs, kGs}) {
    accel::Segment& r = state.seg[seg];
    const bool conforming_code = (r.type & 8) && (r.type & 4);
    if (!r.unusable && !conforming_code && r.dpl < new_cpl) {
      r = {};
      r.unusable = true;
    }
  }
}

}  // namespace vireo::emu
