// Privileged and system-state instructions (SDM Vol. 2 and Vol. 3 chapters 2, 5, 6):
// INT n/INTO/INT3/INT1, IRET, SYSCALL/SYSRET, SWAPGS, RDMSR/WRMSR, MOV to/from CR0/2/3/4/8,
// LGDT/LIDT/SGDT/SIDT, LLDT/LTR/SLDT/STR, INVLPG, RDTSCP. Privilege checks come first,
// then operand checks, then state changes, so a fault leaves nothing changed.
#include "accel/emu/insn_groups.h"
#include "accel/emu/msr.h"
#include "accel/emu/segmentation.h"

namespace vireo::emu {
namespace {

bool Canonical(uint64_t v) {
  return static_cast<uint64_t>(static_cast<int64_t>(v << 16) >> 16) == v;
}
bool In64(const CpuState& s) { return s.mode() == CpuMode::kLong64; }
int Iopl(const CpuState& s) { return static_cast<int>((s.flags.Get() & kIopl) >> 12); }

accel::Segment FlatSegment(uint16_t selector, int dpl, bool code) {
  accel::Segment s;
  s.selector = selector;
  s.limit = 0xffffffff;
  s.type = code ? 0xb : 0x3;
  s.s = s.present = s.g = true;
  s.dpl = static_cast<uint8_t>(dpl);
  s.l = code;
  s.db = !code;
  return s;
}

StepStatus IntN(Interpreter& cpu, const DecodedInsn& insn) {  // CD ib
  return cpu.RaiseSoftware(static_cast<uint8_t>(insn.imm()), EventKind::kSoftware);
}
StepStatus Int3(Interpreter& cpu, const DecodedInsn&) {  // CC
  return cpu.RaiseSoftware(kBreakpoint, EventKind::kSoftware);
}
StepStatus Int1(Interpreter& cpu, const DecodedInsn&) {  // F1: a #DB trap, no DPL check
  return cpu.RaiseSoftware(kDebug, EventKind::kTrap);
}
StepStatus Into(Interpreter& cpu, const DecodedInsn&) {  // CE (#UD in 64-bit mode: decoder)
  if (!cpu.state().flags.of()) return StepStatus::kOk;
  return cpu.RaiseSoftware(kOverflow, EventKind::kSoftware);
}

// CF: IRET/IRETD/IRETQ. Real mode, protected mode and IA-32e mode (SDM Vol. 2 "IRET"):
// same-level and outer-level returns. Task returns (NT) and returns to virtual-8086 mode
// are not emulated (kUnimplemented in legacy mode; NT is #GP in IA-32e mode).
StepStatus Iret(Interpreter& cpu, const DecodedInsn& insn) {
  cpu.SyncCode();  // serializing (Linux's sync_core() is an IRET to itself)
  CpuState& s = cpu.state();
  const int size = OpSize(insn);
  const uint64_t bytes = uint64_t{1} << size;
  const uint64_t rsp = s.gpr[kRsp];
  const uint64_t old_flags = s.flags.Get();
  uint64_t rip, sel, flags;
  if (!(s.cr0 & kCr0Pe)) {
    if (!cpu.Pop(size, &rip) || !cpu.Pop(size, &sel) || !cpu.Pop(size, &flags)) {
      s.gpr[kRsp] = rsp;
      return cpu.MemoryFault();
    }
    s.seg[kCs].selector = static_cast<uint16_t>(sel);
    s.seg[kCs].base = (sel & 0xffff) << 4;
    const uint64_t keep = size == kSize16 ? ~0xffffull : (kVm | kVif | kVip);
    s.flags.Set((old_flags & keep) | (flags & ~keep));
    cpu.Branch(rip, size);
    return StepStatus::kOk;
  }
  if (old_flags & kNt) {
    if (!s.long_mode()) return cpu.Unimplemented();  // task return: no task switches yet
    return cpu.Raise(kGeneralProtection, 0);         // no task return in IA-32e mode
  }
  const int ss_size = cpu.StackSizeLog();
  uint64_t v[5] = {};
  for (int i = 0; i < 3; ++i) {
    if (!cpu.Read(kSs, rsp + i * bytes, size, &v[i], ss_size)) return cpu.MemoryFault();
  }
  rip = v[0], sel = v[1] & 0xffff, flags = v[2];
  const int cpl = s.cpl();
  const int rpl = sel & 3;
  if (!s.long_mode() && cpl == 0 && size == kSize32 && (flags & kVm))
    return cpu.Unimplemented();  // return to virtual-8086 mode
  // SS:rSP follow in 64-bit mode always, else only on a return to an outer level.
  if (In64(s) || rpl > cpl) {
    for (int i = 3; i < 5; ++i) {
      if (!cpu.Read(kSs, rsp + i * bytes, size, &v[i], ss_size)) return cpu.MemoryFault();
    }
  }
  if ((sel & 0xfffc) == 0) return cpu.Raise(kGeneralProtection, 0);
  if (rpl < cpl) return cpu.Raise(kGeneralProtection, sel & 0xfffc);
  uint64_t desc;
  if (!cpu.ReadDescriptor(static_cast<uint16_t>(sel), &desc)) return cpu.MemoryFault();
  accel::Segment cs = SegmentFrom(s, static_cast<uint16_t>(sel), desc);
  if (!cs.s || !(cs.type & 8) || ((cs.type & 4) ? cs.dpl > rpl : cs.dpl != rpl))
    return cpu.Raise(kGeneralProtection, sel & 0xfffc);
  if (!cs.present) return cpu.Raise(kSegmentNotPresent, sel & 0xfffc);
  if (cs.l ? !Canonical(rip) : (rip & SizeMask(size)) > cs.limit)
    return cpu.Raise(kGeneralProtection, 0);
  // SS:RSP are popped in 64-bit mode always, else only on a return to an outer level.
  const bool pop_stack = In64(s) || rpl > cpl;
  accel::Segment ss = s.seg[kSs];
  if (pop_stack) {
    const uint16_t ss_sel = static_cast<uint16_t>(v[4]);
    if ((ss_sel & 0xfffc) == 0) {
      // A null SS is allowed only for a 64-bit return below CPL3.
      if (!cs.l || rpl == 3) return cpu.Raise(kGeneralProtection, 0);
      ss = {};
      ss.selector = ss_sel;
      ss.unusable = true;
      ss.dpl = static_cast<uint8_t>(rpl);
    } else {
      if ((ss_sel & 3) != rpl) return cpu.Raise(kGeneralProtection, ss_sel & 0xfffc);
      uint64_t sd;
      if (!cpu.ReadDescriptor(ss_sel, &sd)) return cpu.MemoryFault();
      ss = SegmentFrom(s, ss_sel, sd);
      if (!ss.s || (ss.type & 0xa) != 2 || ss.dpl != rpl)
        return cpu.Raise(kGeneralProtection, ss_sel & 0xfffc);
      if (!ss.present) return cpu.Raise(kStackFault, ss_sel & 0xfffc);
    }
  }
  // RFLAGS: IOPL only at CPL0, IF only when CPL <= IOPL; VM/VIF/VIP stay (SDM "IRET").
  uint64_t writable = kArithFlags | kTf | kDf | kNt | kRf | kAc | kId;
  if (cpl <= Iopl(s)) writable |= kIf;
  if (cpl == 0) writable |= kIopl | kVif | kVip;
  if (size == kSize16) writable &= 0xffff;
  s.flags.Set((old_flags & ~writable) | (flags & writable));
  cs.selector = static_cast<uint16_t>(sel);
  cs.dpl = static_cast<uint8_t>(rpl);  // CPL = RPL, conforming segments included
  s.seg[kCs] = cs;
  if (pop_stack) {
    s.seg[kSs] = ss;
    s.gpr[kRsp] = v[3] & (size == kSize16 ? 0xffff : ~0ull);
    if (rpl > cpl) DropInaccessibleSegments(s, rpl);
  } else {
    cpu.SetGpr(kRsp, ss_size, rsp + 3 * bytes);
  }
  cpu.Branch(rip, cs.l ? kSize64 : size);
  return StepStatus::kOk;
}

// 0F 05 SYSCALL and 0F 07 SYSRET (SDM Vol. 2; AMD APM Vol. 2 6.1.1): flat segments from STAR.
StepStatus Syscall(Interpreter& cpu, const DecodedInsn&) {
  CpuState& s = cpu.state();
  if (!(s.efer & kEferSce) || !In64(s)) return cpu.Raise(kInvalidOpcode);
  const uint64_t flags = s.flags.Get();
  s.gpr[kRcx] = cpu.next_rip();
  s.gpr[kR11] = flags & ~kRf;
  const uint16_t sel = static_cast<uint16_t>(s.msr.star >> 32) & 0xfffc;
  s.seg[kCs] = FlatSegment(sel, 0, true);
  s.seg[kSs] = FlatSegment(static_cast<uint16_t>(sel + 8), 0, false);
  s.flags.Set(flags & ~s.msr.sfmask & ~kRf);
  cpu.Branch(s.msr.lstar, kSize64);
  return StepStatus::kOk;
}

StepStatus Sysret(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  if (!(s.efer & kEferSce) || !In64(s)) return cpu.Raise(kInvalidOpcode);
  if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
  const bool to64 = insn.rex_w();
  if (to64 && !Canonical(s.gpr[kRcx])) return cpu.Raise(kGeneralProtection, 0);
  const uint16_t base = static_cast<uint16_t>(s.msr.star >> 48);
  accel::Segment cs = FlatSegment(static_cast<uint16_t>((to64 ? base + 16 : base) | 3), 3, true);
  if (!to64) cs.l = false, cs.db = true;
  s.seg[kCs] = cs;
  // SS keeps its selector from STAR; this CPU (AMD) leaves SS's other attributes as they
  // were, Intel loads flat ones: flat is what every OS expects, and what we do.
  s.seg[kSs] = FlatSegment(static_cast<uint16_t>((base + 8) | 3), 3, false);
  s.flags.Set((s.gpr[kR11] & 0x3c7fd7) | kFixed1);
  cpu.Branch(to64 ? s.gpr[kRcx] : s.gpr[kRcx] & 0xffffffff, kSize64);
  return StepStatus::kOk;
}

bool ReadMsrImpl(Interpreter& cpu, uint32_t index, uint64_t* value) {
  CpuState& s = cpu.state();
  Msrs& m = s.msr;
  switch (index) {
    case kMsrTsc:
      *value = cpu.env().ReadTsc() + m.tsc_offset;
      return true;
    case kMsrApicBase:
      *value = m.apic_base;
      return true;
    case kMsrMiscEnable:
      *value = m.misc_enable;
      return true;
    case kMsrPat:
      *value = m.pat;
      return true;
    case kMsrMtrrDefType:
      *value = m.mtrr_def_type;
      return true;
    case kMsrEfer:
      *value = s.efer;
      return true;
    case kMsrStar:
      *value = m.star;
      return true;
    case kMsrLstar:
      *value = m.lstar;
      return true;
    case kMsrCstar:
      *value = m.cstar;
      return true;
    case kMsrSfmask:
      *value = m.sfmask;
      return true;
    case kMsrFsBase:
      *value = s.seg[kFs].base;
      return true;
    case kMsrGsBase:
      *value = s.seg[kGs].base;
      return true;
    case kMsrKernelGsBase:
      *value = m.kernel_gs_base;
      return true;
    case kMsrTscAux:
      *value = m.tsc_aux;
      return true;
    case kMsrSysenterCs:
      *value = m.sysenter_cs;
      return true;
    case kMsrSysenterEsp:
      *value = m.sysenter_esp;
      return true;
    case kMsrSysenterEip:
      *value = m.sysenter_eip;
      return true;
    default:
      return cpu.env().ReadApicMsr(index, value);
  }
}

// Returns false for #GP(0): unknown MSR or a value the MSR refuses.
bool WriteMsrImpl(Interpreter& cpu, uint32_t index, uint64_t v) {
  CpuState& s = cpu.state();
  Msrs& m = s.msr;
  switch (index) {
    case kMsrTsc:
      m.tsc_offset = v - cpu.env().ReadTsc();
      return true;
    case kMsrApicBase: {
      if (v & ~0xfffffffffd00ull) return false;  // reserved bits (SDM Vol. 3 10.4.4)
      // EN (11) and EXTD (10): EXTD without EN is invalid, and x2APIC mode is entered only
      // from xAPIC mode and left only by disabling the APIC (SDM Vol. 3 11.12.5, figure
      // 11-27); the other transitions #GP.
      constexpr uint64_t kEn = 1u << 11, kExtd = 1u << 10;
      const uint64_t from = m.apic_base & (kEn | kExtd), to = v & (kEn | kExtd);
      if (to == kExtd) return false;
      if (from == (kEn | kExtd) && to == kEn) return false;
      if (from == 0 && to == (kEn | kExtd)) return false;
      m.apic_base = v;
      cpu.env().ApicBaseChanged(v);
      return true;
    }
    case kMsrMiscEnable:
      m.misc_enable = v;
      return true;
    case kMsrPat:
      // Each entry must name a valid memory type: 0 1 4 5 6 7 (SDM Vol. 3 11.12.2).
      for (int i = 0; i < 8; ++i) {
        const unsigned t = (v >> (i * 8)) & 0xff;
        if (t == 2 || t == 3 || t > 7) return false;
      }
      m.pat = v;
      return true;
    case kMsrMtrrDefType:
      if (v & ~0xcffull) return false;
      m.mtrr_def_type = v;
      return true;
    case kMsrEfer: {
      if (v & ~(kEferSce | kEferLme | kEferLma | kEferNxe)) return false;
      // LME may not change while paging is on; LMA is read-only (SDM Vol. 3 9.8.5).
      if ((s.cr0 & kCr0Pg) && ((v ^ s.efer) & kEferLme)) return false;
      const uint64_t next = (v & ~kEferLma) | (s.efer & kEferLma);
      if ((next ^ s.efer) & kEferNxe) cpu.FlushTlb(true);
      s.efer = next;
      return true;
    }
    case kMsrStar:
      m.star = v;
      return true;
    case kMsrLstar:
    case kMsrCstar:
    case kMsrFsBase:
    case kMsrGsBase:
    case kMsrKernelGsBase:
      if (!Canonical(v)) return false;
      if (index == kMsrLstar) m.lstar = v;
      if (index == kMsrCstar) m.cstar = v;
      if (index == kMsrFsBase) s.seg[kFs].base = v;
      if (index == kMsrGsBase) s.seg[kGs].base = v;
      if (index == kMsrKernelGsBase) m.kernel_gs_base = v;
      return true;
    case kMsrSfmask:
      m.sfmask = v & 0xffffffff;
      return true;
    case kMsrTscAux:
      m.tsc_aux = v & 0xffffffff;
      return true;
    case kMsrSysenterCs:
      m.sysenter_cs = v & 0xffff;
      return true;
    case kMsrSysenterEsp:
    case kMsrSysenterEip:
      if (!Canonical(v)) return false;
      (index == kMsrSysenterEsp ? m.sysenter_esp : m.sysenter_eip) = v;
      return true;
    default:
      return cpu.env().WriteApicMsr(index, v, cpu.env().ReadTsc() + m.tsc_offset);
  }
}

StepStatus Msr(Interpreter& cpu, const DecodedInsn& insn) {  // 0F 30 WRMSR, 0F 32 RDMSR
  CpuState& s = cpu.state();
  if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
  const uint32_t index = static_cast<uint32_t>(s.gpr[kRcx]);
  if ((insn.opcode() & 0xff) == 0x30) {
    const uint64_t v = (s.gpr[kRdx] << 32) | (s.gpr[kRax] & 0xffffffff);
    if (!WriteMsr(cpu, index, v)) return cpu.Raise(kGeneralProtection, 0);
    return StepStatus::kOk;
  }
  uint64_t v;
  if (!ReadMsr(cpu, index, &v)) return cpu.Raise(kGeneralProtection, 0);
  cpu.SetGpr(kRax, kSize32, v & 0xffffffff);
  cpu.SetGpr(kRdx, kSize32, v >> 32);
  return StepStatus::kOk;
}

// 0F 20 / 0F 22: MOV r, CRn / MOV CRn, r (SDM Vol. 2 "MOV—Move to/from Control Registers").
StepStatus MovCr(Interpreter& cpu, const DecodedInsn& insn) {
  cpu.SyncCode();  // serializing
  CpuState& s = cpu.state();
  const int cr = insn.reg();
  if (cr != 0 && cr != 2 && cr != 3 && cr != 4 && cr != 8) return cpu.Raise(kInvalidOpcode);
  if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
  const int size = In64(s) ? kSize64 : kSize32;  // 32-bit in compatibility mode too
  if ((insn.opcode() & 0xff) == 0x20) {
    const uint64_t v = cr == 0   ? s.cr0
                       : cr == 2 ? s.cr2
                       : cr == 3 ? s.cr3
                       : cr == 4 ? s.cr4
                                 : s.cr8;
    cpu.SetGpr(insn.rm(), size, v);
    return StepStatus::kOk;
  }
  const uint64_t v = cpu.Gpr(insn.rm(), size);
  switch (cr) {
    case 0: {
      // Reserved high bits, PG without PE, NW without CD, and long mode without PAE: #GP.
      if ((v >> 32) || ((v & kCr0Pg) && !(v & kCr0Pe)) || ((v & (1u << 29)) && !(v & (1u << 30))))
        return cpu.Raise(kGeneralProtection, 0);
      const bool to_long = (v & kCr0Pg) && !(s.cr0 & kCr0Pg) && (s.efer & kEferLme);
      if (to_long && !(s.cr4 & kCr4Pae)) return cpu.Raise(kGeneralProtection, 0);
      if (!(v & kCr0Pg) && s.long_mode() && In64(s)) return cpu.Raise(kGeneralProtection, 0);
      const uint64_t changed = v ^ s.cr0;
      // PAE paging turned on (or CD/NW/PG changed under it) loads the PDPTEs (SDM 4.4.1).
      if ((v & kCr0Pg) && (s.cr4 & kCr4Pae) && !(s.efer & kEferLme) &&
          (changed & (kCr0Pg | (3u << 29))) && !LoadPdptes(s.cr3, cpu.memory(), &s.pdpte))
        return cpu.Raise(kGeneralProtection, 0);
      s.cr0 = v | (1u << 4);  // ET is hard-wired to 1
      if (s.cr0 & kCr0Pg) {
        if (s.efer & kEferLme) s.efer |= kEferLma;
      } else {
        s.efer &= ~kEferLma;
      }
      if (changed & (kCr0Pg | kCr0Wp | kCr0Pe)) cpu.FlushTlb(true);  // SDM Vol. 3 4.10.4.1
      return StepStatus::kOk;
    }
    case 2:
      s.cr2 = v;
      return StepStatus::kOk;
    case 3:
      if ((s.cr0 & kCr0Pg) && (s.cr4 & kCr4Pae) && !s.long_mode() &&
          !LoadPdptes(v, cpu.memory(), &s.pdpte))
        return cpu.Raise(kGeneralProtection, 0);
      s.cr3 = v & ~(uint64_t{1} << 63);  // bit 63 is "no flush" with PCIDE only
      cpu.FlushTlb(false);               // global entries survive (4.10.4.1)
      return StepStatus::kOk;
    case 4: {
      constexpr uint64_t kKnown = 0x3f07ff;  // VME..SMAP as far as this CPU models them
      if ((v & ~kKnown) || (s.long_mode() && !(v & kCr4Pae)))
        return cpu.Raise(kGeneralProtection, 0);
      constexpr uint64_t kPagingBits =
          (1u << 4) | kCr4Pae | (1u << 7) | kCr4Smep | (1u << 21) | (1u << 17);
      const bool flush = (v ^ s.cr4) & kPagingBits;
      if (flush && (v & kCr4Pae) && (s.cr0 & kCr0Pg) && !s.long_mode() &&
          !LoadPdptes(s.cr3, cpu.memory(), &s.pdpte))
        return cpu.Raise(kGeneralProtection, 0);
      s.cr4 = v;
      if (flush) cpu.FlushTlb(true);
      return StepStatus::kOk;
    }
    default:
      if (v >> 4) return cpu.Raise(kGeneralProtection, 0);
      s.cr8 = v;
      return StepStatus::kOk;
  }
}

// 0F 01 /0-/3 memory forms and /7: SGDT SIDT LGDT LIDT INVLPG; register forms SWAPGS, RDTSCP.
StepStatus Group7(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  const int op = insn.group_op();
  if (insn.is_reg_form()) {
    const int rm = insn.modrm() & 7;
    if (op == 7 && rm == 0) {  // SWAPGS (F8)
      if (!In64(s)) return cpu.Raise(kInvalidOpcode);
      if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
      std::swap(s.seg[kGs].base, s.msr.kernel_gs_base);
      return StepStatus::kOk;
    }
    if (op == 7 && rm == 1) {  // RDTSCP (F9)
      const uint64_t tsc = cpu.env().ReadTsc() + s.msr.tsc_offset;
      cpu.SetGpr(kRax, kSize32, tsc & 0xffffffff);
      cpu.SetGpr(kRdx, kSize32, tsc >> 32);
      cpu.SetGpr(kRcx, kSize32, s.msr.tsc_aux & 0xffffffff);
      return StepStatus::kOk;
    }
    if (op == 2 && (rm == 0 || rm == 1)) return XgetbvXsetbv(cpu, insn);
    if (op == 4) return Smsw(cpu, insn);
    if (op == 6) return Lmsw(cpu, insn);
    return cpu.Unimplemented();  // MONITOR/MWAIT, CLAC/STAC, ...
  }
  const uint64_t ea = cpu.EffectiveAddress(insn);
  const Seg seg = insn.segment();
  const int asize = insn.address_size();
  const int base_size = In64(s) ? kSize64 : kSize32;
  switch (op) {
    case 0:
    case 1: {  // SGDT / SIDT: allowed at any CPL without UMIP
      const accel::DescriptorTable& t = op == 0 ? s.gdtr : s.idtr;
      if (!cpu.Write(seg, ea, kSize16, t.limit, asize) ||
          !cpu.Write(seg, ea + 2, base_size, t.base, asize))
        return cpu.MemoryFault();
      return StepStatus::kOk;
    }
    case 2:
    case 3: {  // LGDT / LIDT
      if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
      uint64_t limit, base;
      if (!cpu.Read(seg, ea, kSize16, &limit, asize) ||
          !cpu.Read(seg, ea + 2, base_size, &base, asize))
        return cpu.MemoryFault();
      if (base_size == kSize32 && OpSize(insn) == kSize16) base &= 0xffffff;
      if (In64(s) && !Canonical(base)) return cpu.Raise(kGeneralProtection, 0);
      accel::DescriptorTable& t = op == 2 ? s.gdtr : s.idtr;
      t = {base, static_cast<uint16_t>(limit)};
      return StepStatus::kOk;
    }
    case 7: {  // INVLPG
      if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
      uint64_t linear =
          ea + (In64(s) ? ((seg == kFs || seg == kGs) ? s.seg[seg].base : 0) : s.seg[seg].base);
      if (!In64(s)) linear &= 0xffffffff;  // legacy linear addresses wrap at 4 GiB
      cpu.FlushTlbPage(linear);
      return StepStatus::kOk;
    }
    case 4:
      return Smsw(cpu, insn);
    case 6:
      return Lmsw(cpu, insn);
    default:
      return cpu.Unimplemented();
  }
}

// 0F 00 /0-/3: SLDT STR LLDT LTR (SDM Vol. 3 7.2.4, 3.5.2: 16-byte system descriptors).
StepStatus Group6(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  if (!(s.cr0 & kCr0Pe)) return cpu.Raise(kInvalidOpcode);
  const int op = insn.group_op();
  if (op <= 1) {
    const uint64_t sel = op == 0 ? s.ldtr.selector : s.tr.selector;
    if (!cpu.WriteRm(insn, insn.is_reg_form() ? OpSize(insn) : kSize16, sel))
      return cpu.MemoryFault();
    return StepStatus::kOk;
  }
  if (op == 4 || op == 5) return VerrVerw(cpu, insn);
  if (op > 3) return cpu.Unimplemented();
  if (s.cpl() != 0) return cpu.Raise(kGeneralProtection, 0);
  uint64_t raw;
  if (!cpu.ReadRm(insn, kSize16, &raw)) return cpu.MemoryFault();
  const uint16_t sel = static_cast<uint16_t>(raw);
  if ((sel & 0xfffc) == 0) {
    if (op == 3) return cpu.Raise(kGeneralProtection, 0);
    s.ldtr = {};
    s.ldtr.unusable = true;
    return StepStatus::kOk;
  }
  if (sel & 4) return cpu.Raise(kGeneralProtection, sel & 0xfffc);  // must be in the GDT
  uint64_t d[2] = {};
  if (!cpu.ReadDescriptor(sel, &d[0])) return cpu.MemoryFault();
  if (s.long_mode()) {
    if ((sel | 15u) > s.gdtr.limit) return cpu.Raise(kGeneralProtection, sel & 0xfffc);
    if (!cpu.SystemRead(s.gdtr.base + (sel & ~7u) + 8, &d[1], 8)) return cpu.MemoryFault();
  }
  accel::Segment seg = Interpreter::CodeSegmentFrom(sel, d[0]);
  const unsigned want = op == 2 ? 2 : (s.long_mode() ? 9 : 9);  // LDT; available TSS
  if (seg.s || (op == 2 ? seg.type != want : (seg.type != 9 && (s.long_mode() || seg.type != 1))))
    return cpu.Raise(kGeneralProtection, sel & 0xfffc);
  if (!seg.present) return cpu.Raise(kSegmentNotPresent, sel & 0xfffc);
  if (s.long_mode()) seg.base |= (d[1] & 0xffffffff) << 32;
  if (op == 2) {
    s.ldtr = seg;
    return StepStatus::kOk;
  }
  // LTR marks the descriptor busy in the GDT (SDM Vol. 2 "LTR").
  const uint64_t busy = d[0] | (uint64_t{2} << 40);
  if (!cpu.SystemWrite(s.gdtr.base + (sel & ~7u), &busy, 8)) return cpu.MemoryFault();
  seg.type |= 2;
  s.tr = seg;
  return StepStatus::kOk;
}

// CLI/STI (FA/FB): CPL <= IOPL (no VME/PVI); STI that sets IF opens the one-instruction
// shadow (SDM Vol. 2 "STI").
StepStatus CliSti(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  if ((s.cr0 & kCr0Pe) && s.cpl() > Iopl(s)) return cpu.Raise(kGeneralProtection, 0);
  const bool sti = (insn.opcode() & 0xff) == 0xfb;
  if (sti && !s.flags.ifl()) s.interrupt_shadow = true;
  s.flags.SetBit(kIf, sti);
  return StepStatus::kOk;
}

}  // namespace

bool ReadMsr(Interpreter& cpu, uint32_t index, uint64_t* value) {
  return ReadMsrImpl(cpu, index, value);
}

bool WriteMsr(Interpreter& cpu, uint32_t index, uint64_t value) {
  return WriteMsrImpl(cpu, index, value);
}

void RegisterPrivileged(HandlerTable& t) {
  t[0xcd] = IntN;
  t[0xcc] = Int3;
  t[0xf1] = Int1;
  t[0xce] = Into;
  t[0xcf] = Iret;
  t[0xfa] = t[0xfb] = CliSti;
  t[kMap0F | 0x05] = Syscall;
  t[kMap0F | 0x07] = Sysret;
  t[kMap0F | 0x30] = t[kMap0F | 0x32] = Msr;
  t[kMap0F | 0x20] = t[kMap0F | 0x22] = MovCr;
  t[kMap0F | 0x01] = Group7;
  t[kMap0F | 0x00] = Group6;
}

}  // namespace vireo::emu
