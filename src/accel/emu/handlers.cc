// The dispatch table: every opcode starts as "not emulated yet" (kUnimplemented, so a gap
// is reported, never silently treated as #UD), then each instruction group fills its own.
#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

StepStatus NotEmulated(Interpreter& cpu, const DecodedInsn&) { return cpu.Unimplemented(); }

HandlerTable Build() {
  HandlerTable t;
  t.fill(NotEmulated);
  RegisterAlu(t);
  RegisterShift(t);
  RegisterMov(t);
  RegisterControl(t);
  RegisterBits(t);
  RegisterString(t);
  RegisterSystem(t);
  RegisterPrivileged(t);
  RegisterFpu(t);
  RegisterSse(t);
  RegisterSseInteger(t);
  RegisterSseFloat(t);
  RegisterSegment(t);
  RegisterControlRegs(t);
  return t;
}

}  // namespace

const HandlerTable& Interpreter::Table() {
  static const HandlerTable table = Build();
  return table;
}

}  // namespace vireo::emu
