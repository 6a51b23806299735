// Event delivery (SDM Vol. 3 chapter 6): exceptions, software and external interrupts
// through the IDT in IA-32e mode (16-byte gates, IST, stack switch to the TSS's RSPn,
// 16-byte aligned frame, error codes) and through the real-mode IVT. A fault while
// delivering escalates as in SDM Vol. 3 Table 6-5 (#DF), and a fault while delivering #DF
// is a triple fault: kShutdown, as KVM reports it. Legacy protected mode uses 8-byte
// interrupt/trap gates (32- and 16-bit) with a stack switch through the 32-bit or 16-bit
// TSS; task gates are not emulated (kUnimplemented). Compatibility mode uses the IA-32e IDT.
#include <cstring>

#include "accel/emu/interpreter.h"

namespace vireo::emu {
namespace {

bool Canonical(uint64_t v) {
  return static_cast<uint64_t>(static_cast<int64_t>(v << 16) >> 16) == v;
}

// SDM Vol. 3 Table 6-4: the contributory exceptions.
bool Contributory(uint8_t v) { return v == 0 || (v >= 10 && v <= 13); }

// Table 6-5: does `second`, raised while delivering `first`, make a #DF?
bool MakesDoubleFault(uint8_t first, uint8_t second) {
  if (Contributory(first)) return Contributory(second);
  if (first == kPageFault) return Contributory(second) || second == kPageFault;
  return false;
}

}  // namespace

bool Interpreter::SystemRead(uint64_t linear, void* bytes, size_t len) {
  supervisor_ = true;
  const bool ok = LinearRead(linear, static_cast<uint8_t*>(bytes), len, Access::kRead);
  supervisor_ = false;
  return ok;
}

bool Interpreter::SystemWrite(uint64_t linear, const void* bytes, size_t len) {
  supervisor_ = true;
  const bool ok = LinearWrite(linear, static_cast<const uint8_t*>(bytes), len);
  supervisor_ = false;
  return ok;
}

bool Interpreter::ReadDescriptor(uint16_t selector, uint64_t* descriptor) {
  const accel::DescriptorTable table =
      (selector & 4)
          ? accel::DescriptorTable{state_.ldtr.base, static_cast<uint16_t>(state_.ldtr.limit)}
          : state_.gdtr;
  if (((selector & 4) && state_.ldtr.unusable) || (selector | 7u) > table.limit) {
    fault_status_ = Raise(kGeneralProtection, selector & 0xfffc);
    return false;
  }
  return SystemRead(table.base + (selector & ~7u), descriptor, 8);
}

accel::Segment Interpreter::CodeSegmentFrom(uint16_t selector, uint64_t d) {
  accel::Segment s;
  s.selector = selector;
  s.base = ((d >> 16) & 0xffffff) | ((d >> 56) & 0xff) << 24;
  s.limit = static_cast<uint32_t>((d & 0xffff) | ((d >> 48) & 0xf) << 16);
  s.g = (d >> 55) & 1;
  if (s.g) s.limit = (s.limit << 12) | 0xfff;
  s.type = (d >> 40) & 0xf;
  s.s = (d >> 44) & 1;
  s.dpl = (d >> 45) & 3;
  s.present = (d >> 47) & 1;
  s.avl = (d >> 52) & 1;
  s.l = (d >> 53) & 1;
  s.db = (d >> 54) & 1;
  return s;
}

bool Interpreter::DeliverOnce(const Exception& e) {
  const uint32_t ext = e.kind == EventKind::kSoftware ? 0 : 1;
  const uint32_t idt_error = e.vector * 8u + 2 + ext;
  const uint64_t return_rip =
      e.kind == EventKind::kTrap || e.kind == EventKind::kSoftware ? next_rip_ : state_.rip;
  const uint64_t rflags = state_.flags.Get();
  if (!state_.long_mode()) {
    // Real mode (SDM Vol. 3 20.1.4): IVT of 4-byte CS:IP vectors, a 16-bit FLAGS/CS/IP frame.
    if (state_.cr0 & kCr0Pe) return DeliverProtected(e, return_rip);
    uint32_t vec;
    if (e.vector * 4u + 3 > state_.idtr.limit) return Raise(kGeneralProtection, idt_error), false;
    if (!SystemRead(state_.idtr.base + e.vector * 4u, &vec, 4)) return false;
    const uint64_t rsp = state_.gpr[kRsp];
    if (!Push(kSize16, rflags) || !Push(kSize16, state_.seg[kCs].selector) ||
        !Push(kSize16, return_rip)) {
      state_.gpr[kRsp] = rsp;
      return false;
    }
    state_.seg[kCs].selector = static_cast<uint16_t>(vec >> 16);
    state_.seg[kCs].base = (vec >> 16) << 4;
    state_.rip = vec & 0xffff;
    state_.flags.Set(rflags & ~(kIf | kTf | kAc | kRf));
    return true;
  }
  // IA-32e mode (SDM Vol. 3 6.14): 16-byte gates.
  if (e.vector * 16u + 15 > state_.idtr.limit) return Raise(kGeneralProtection, idt_error), false;
  uint64_t gate[2];
  if (!SystemRead(state_.idtr.base + e.vector * 16u, gate, 16)) return false;
  const unsigned type = (gate[0] >> 40) & 0xf;
  const int gate_dpl = (gate[0] >> 45) & 3;
  const int cpl = state_.cpl();
  if (type != 0xe && type != 0xf) return Raise(kGeneralProtection, idt_error), false;
  // INT n/INT3/INTO need CPL <= gate DPL (6.12.1.1); INT1 and exceptions skip the check.
  if (e.kind == EventKind::kSoftware && gate_dpl < cpl)
    return Raise(kGeneralProtection, idt_error), false;
  if (!((gate[0] >> 47) & 1)) return Raise(kSegmentNotPresent, idt_error), false;
  const uint16_t selector = static_cast<uint16_t>(gate[0] >> 16);
  const uint64_t target =
      (gate[0] & 0xffff) | ((gate[0] >> 48) & 0xffff) << 16 | (gate[1] & 0xffffffff) << 32;
  const unsigned ist = (gate[0] >> 32) & 7;
  if ((selector & 0xfffc) == 0) return Raise(kGeneralProtection, ext), false;
  uint64_t desc;
  if (!ReadDescriptor(selector, &desc)) return false;
  accel::Segment cs = CodeSegmentFrom(selector, desc);
  // The target must be present 64-bit code with DPL <= CPL (6.12.1.1, 6.14.1).
  if (!cs.s || !(cs.type & 8) || !cs.l || cs.db || cs.dpl > cpl)
    return Raise(kGeneralProtection, (selector & 0xfffc) | ext), false;
  if (!cs.present) return Raise(kSegmentNotPresent, (selector & 0xfffc) | ext), false;
  const int new_cpl = (cs.type & 4) ? cpl : cs.dpl;  // conforming code keeps CPL
  uint64_t rsp = state_.gpr[kRsp];
  // New stack: the IST entry when the gate names one, else RSPn on a privilege change
  // (6.14.4, 6.14.5); the TSS is read as a supervisor access and checked against its limit.
  if (ist != 0 || new_cpl < cpl) {
    const uint32_t offset = ist != 0 ? 0x24 + (ist - 1) * 8 : 4 + new_cpl * 8;
    if (offset + 7 > state_.tr.limit)
      return Raise(kInvalidTss, (state_.tr.selector & 0xfffc) | ext), false;
    if (!SystemRead(state_.tr.base + offset, &rsp, 8)) return false;
  }
  rsp &= ~uint64_t{15};
  uint64_t frame[6];
  int n = 0;
  if (e.has_error_code) frame[n++] = e.error_code;
  frame[n++] = return_rip;
  frame[n++] = state_.seg[kCs].selector;
  frame[n++] = rflags;
  frame[n++] = state_.gpr[kRsp];
  frame[n++] = state_.seg[kSs].selector;
  const uint64_t new_rsp = rsp - n * 8u;
  if (!Canonical(new_rsp)) return Raise(kStackFault, ext), false;
  // The frame is written as CPL new_cpl would (a supervisor write when new_cpl < 3).
  if (!SystemWrite(new_rsp, frame, n * 8u)) return false;
  // Commit: nothing above this line changed architectural state except CR2 on a #PF.
  cs.selector = static_cast<uint16_t>((selector & 0xfffc) | new_cpl);
  cs.dpl = static_cast<uint8_t>(new_cpl);
  if (new_cpl < cpl) {
    // SS becomes a null selector with RPL = new CPL (6.14.4).
    accel::Segment ss;
    ss.selector = static_cast<uint16_t>(new_cpl);
    ss.dpl = static_cast<uint8_t>(new_cpl);
    ss.unusable = true;
    state_.seg[kSs] = ss;
  }
  state_.seg[kCs] = cs;
  state_.gpr[kRsp] = new_rsp;
  state_.rip = target;
  uint64_t f = rflags & ~(kTf | kNt | kRf | kVm);
  if (type == 0xe) f &= ~kIf;  // interrupt gates mask interrupts; trap gates do not
  state_.flags.Set(f);
  return true;
}

// Legacy protected mode (SDM Vol. 3 6.10-6.12): 8-byte interrupt and trap gates, 32-bit or
// 16-bit; a privilege change takes SSn:ESPn from the TSS (32-bit or 16-bit TSS) and pushes
// SS:ESP; the frame holds EFLAGS, CS, EIP and the error code at the gate's size.
bool Interpreter::DeliverProtected(const Exception& e, uint64_t return_rip) {
  const uint32_t ext = e.kind == EventKind::kSoftware ? 0 : 1;
  const uint32_t idt_error = e.vector * 8u + 2 + ext;
  const uint64_t rflags = state_.flags.Get();
  const int cpl = state_.cpl();
  if (e.vector * 8u + 7 > state_.idtr.limit) return Raise(kGeneralProtection, idt_error), false;
  uint64_t gate;
  if (!SystemRead(state_.idtr.base + e.vector * 8u, &gate, 8)) return false;
  const unsigned type = (gate >> 40) & 0x1f;  // with S (bit 44): gates are system descriptors
  // Task gates need a task switch, which this CPU does not do.
  if (type == 5) return (fault_status_ = StepStatus::kUnimplemented), false;
  if (type != 6 && type != 7 && type != 0xe && type != 0xf)
    return Raise(kGeneralProtection, idt_error), false;
  if (e.kind == EventKind::kSoftware && static_cast<int>((gate >> 45) & 3) < cpl)
    return Raise(kGeneralProtection, idt_error), false;
  if (!((gate >> 47) & 1)) return Raise(kSegmentNotPresent, idt_error), false;
  const bool gate32 = type & 8;
  const uint16_t selector = static_cast<uint16_t>(gate >> 16);
  uint64_t target = (gate & 0xffff) | ((gate >> 48) & 0xffff) << 16;
  if (!gate32) target &= 0xffff;
  if ((selector & 0xfffc) == 0) return Raise(kGeneralProtection, ext), false;
  uint64_t desc;
  if (!ReadDescriptor(selector, &desc)) return false;
  accel::Segment cs = CodeSegmentFrom(selector, desc);
  cs.l = false;
  if (!cs.s || !(cs.type & 8) || cs.dpl > cpl)
    return Raise(kGeneralProtection, (selector & 0xfffc) | ext), false;
  if (!cs.present) return Raise(kSegmentNotPresent, (selector & 0xfffc) | ext), false;
  if (target > cs.limit) return Raise(kGeneralProtection, ext), false;
  const int new_cpl = (cs.type & 4) ? cpl : cs.dpl;  // conforming code keeps CPL
  const int word = gate32 ? 4 : 2;
  accel::Segment ss = state_.seg[kSs];
  uint64_t esp = state_.gpr[kRsp];
  uint32_t frame[6];
  int n = 0;
  if (e.has_error_code) frame[n++] = e.error_code;
  frame[n++] = static_cast<uint32_t>(return_rip);
  frame[n++] = state_.seg[kCs].selector;
  frame[n++] = static_cast<uint32_t>(rflags);
  if (new_cpl < cpl) {
    // Inner stack from the TSS: ESPn at 4 + 8n and SSn at 8 + 8n (32-bit TSS, type 9/11),
    // SPn at 2 + 4n and SSn at 4 + 4n (16-bit TSS); beyond TR's limit is #TS.
    const bool tss32 = state_.tr.type & 8;
    const uint32_t at = tss32 ? 4 + new_cpl * 8 : 2 + new_cpl * 4;
    const uint32_t width = tss32 ? 4 : 2;
    if (at + width + 1 > state_.tr.limit)
      return Raise(kInvalidTss, (state_.tr.selector & 0xfffc) | ext), false;
    uint32_t new_esp = 0;
    uint16_t ss_sel = 0;
    if (!SystemRead(state_.tr.base + at, &new_esp, width) ||
        !SystemRead(state_.tr.base + at + width, &ss_sel, 2))
      return false;
    // The new SS: a present, writable data segment with RPL = DPL = the new CPL (#TS).
    if ((ss_sel & 0xfffc) == 0) return Raise(kInvalidTss, ext), false;
    uint64_t sd;
    if (!ReadDescriptor(ss_sel, &sd)) return false;
    ss = CodeSegmentFrom(ss_sel, sd);
    ss.l = false;
    if ((ss_sel & 3) != new_cpl || ss.dpl != new_cpl || !ss.s || (ss.type & 0xa) != 2)
      return Raise(kInvalidTss, (ss_sel & 0xfffc) | ext), false;
    if (!ss.present) return Raise(kStackFault, (ss_sel & 0xfffc) | ext), false;
    frame[n++] = static_cast<uint32_t>(state_.gpr[kRsp]);
    frame[n++] = state_.seg[kSs].selector;
    esp = new_esp;
  }
  // The frame, highest value first, as the pushes would leave it.
  const uint64_t size = static_cast<uint64_t>(n) * word;
  const uint64_t mask = ss.db ? 0xffffffffull : 0xffffull;
  const uint64_t new_esp = (esp - size) & mask;
  accel::Segment saved_ss = state_.seg[kSs];
  state_.seg[kSs] = ss;
  const bool fits = SegmentAllows(state_, kSs, new_esp, size, Access::kWrite);
  state_.seg[kSs] = saved_ss;
  if (!fits) return Raise(kStackFault, new_cpl < cpl ? (ss.selector & 0xfffc) | ext : ext), false;
  uint8_t bytes[24];
  for (int i = 0; i < n; ++i) std::memcpy(bytes + i * word, &frame[i], word);
  if (!SystemWrite((ss.base + new_esp) & 0xffffffffull, bytes, size)) return false;
  // Commit (CR2 of a #PF was written when it was raised).
  cs.selector = static_cast<uint16_t>((selector & 0xfffc) | new_cpl);
  cs.dpl = static_cast<uint8_t>(new_cpl);
  state_.seg[kCs] = cs;
  state_.seg[kSs] = ss;
  if (ss.db) {
    state_.gpr[kRsp] = new_esp;
  } else {
    state_.gpr[kRsp] = (esp & ~0xffffull) | new_esp;
  }
  state_.rip = target;
  uint64_t f = rflags & ~(kTf | kNt | kRf | kVm);
  if (!(type & 1)) f &= ~kIf;  // interrupt gates mask interrupts; trap gates do not
  state_.flags.Set(f);
  return true;
}

StepStatus Interpreter::Deliver() {
  Exception event = exception_;
  // At most: the event, a second fault that is delivered serially or becomes #DF, and a
  // fault delivering #DF (shutdown); the loop cannot run longer.
  for (int attempt = 0; attempt < 3; ++attempt) {
    fault_status_ = StepStatus::kOk;
    if (DeliverOnce(event)) return StepStatus::kOk;
    if (fault_status_ == StepStatus::kUnimplemented || fault_status_ == StepStatus::kMmio)
      return fault_status_;
    const Exception second = exception_;
    if (event.vector == kDoubleFault) return StepStatus::kShutdown;
    if (MakesDoubleFault(event.vector, second.vector)) {
      event = {kDoubleFault, true, 0, EventKind::kFault};
    } else {
      event = second;  // benign: handled serially (Table 6-5)
      event.kind = EventKind::kFault;
    }
  }
  return StepStatus::kShutdown;
}

StepStatus Interpreter::InjectInterrupt(uint8_t vector) {
  exception_ = {vector, false, 0, EventKind::kExternal};
  state_.interrupt_shadow = false;
  return Deliver();
}

}  // namespace vireo::emu
