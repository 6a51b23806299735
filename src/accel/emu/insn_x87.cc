// x87 arithmetic, loads, stores, compares, transcendentals and environment forms (D8-DF
// except the control forms in insn_fpu.cc), executed on the host's own x87 unit.
//
// Why the host: the software CPU only ever runs on x86-64, whose x87 is the reference it must
// match bit for bit (80-bit results, rounding and precision control, the C0-C3 codes, the
// stack tags, FPREM's partial results, the transcendentals' exact digits). So each instruction
// runs once, for real: the guest's FXSAVE image is loaded (FXRSTOR64), the instruction itself
// runs from a stub compiled for that opcode and ModRM (memory operands rewritten to [rdi],
// a buffer holding the guest's bytes), the image is saved back (FXSAVE64) and the host's own
// x87/SSE state restored, all inside one asm block so no host code sees guest state.
// Only encodings the SDM documents reach the host; the rest stop the VM with a diagnostic.
#include <array>
#include <cstddef>
#include <cstring>

#include "accel/emu/insn_groups.h"

namespace vireo::emu {
namespace {

constexpr uint16_t kFswExceptions = 0x3f, kFswEs = 1u << 7;
constexpr uint64_t kFlagsArith = 0x8d5;  // CF PF AF ZF SF OF

// What the stub works on; 16-byte aligned for FXSAVE/FXRSTOR.
struct alignas(16) X87Frame {
  std::array<uint8_t, 512> guest;  // in: the guest's image; out: after the instruction
  std::array<uint8_t, 512> host;   // the host's state while the guest's is loaded
  uint64_t rflags;                 // in: guest arithmetic flags (FCMOVcc); out: FCOMI's
  alignas(16) std::array<uint8_t, 112> memory;  // the memory operand (FNSAVE's is 108 bytes)
};
constexpr size_t kGuestOffset = offsetof(X87Frame, guest);
constexpr size_t kHostOffset = offsetof(X87Frame, host);
constexpr size_t kFlagsOffset = offsetof(X87Frame, rflags);

using Stub = void (*)(X87Frame*);

// One instruction: `prefix` is 0x66 for the 16-bit environment formats, else a NOP (0x90)
// run before it. The stack pointer steps over the red zone before PUSHF/POPF.
template <uint8_t kPrefix, uint8_t kOpcode, uint8_t kModrm>
void RunStub(X87Frame* f) {
  asm volatile(
      "fxsave64 %c[host](%[f])\n\t"
      "fxrstor64 %c[guest](%[f])\n\t"
      "lea -128(%%rsp), %%rsp\n\t"
      "pushq %c[flags](%[f])\n\t"
      "popfq\n\t"
      ".byte %c[prefix], %c[opcode], %c[modrm]\n\t"
      "pushfq\n\t"
      "popq %c[flags](%[f])\n\t"
      "lea 128(%%rsp), %%rsp\n\t"
      "fxsave64 %c[guest](%[f])\n\t"
      "fxrstor64 %c[host](%[f])\n\t"
      :
      : [f] "S"(f), "D"(f->memory.data()), [host] "i"(kHostOffset), [guest] "i"(kGuestOffset),
        [flags] "i"(kFlagsOffset), [prefix] "i"(kPrefix), [opcode] "i"(kOpcode), [modrm] "i"(kModrm)
      : "memory", "cc");
}

// Stubs for the register forms (opcode D8+i, ModRM C0+j) and the memory forms ([rdi], with
// and without the 0x66 prefix).
template <uint8_t kOpcode, size_t... kJ>
constexpr std::array<Stub, 64> RegisterRow(std::index_sequence<kJ...>) {
  return {&RunStub<0x90, kOpcode, static_cast<uint8_t>(0xc0 + kJ)>...};
}
template <uint8_t kPrefix, uint8_t kOpcode, size_t... kDigit>
constexpr std::array<Stub, 8> MemoryRow(std::index_sequence<kDigit...>) {
  return {&RunStub<kPrefix, kOpcode, static_cast<uint8_t>((kDigit << 3) | 7)>...};
}
template <size_t... kI>
constexpr std::array<std::array<Stub, 64>, 8> RegisterStubs(std::index_sequence<kI...>) {
  return {RegisterRow<static_cast<uint8_t>(0xd8 + kI)>(std::make_index_sequence<64>())...};
}
template <uint8_t kPrefix, size_t... kI>
constexpr std::array<std::array<Stub, 8>, 8> MemoryStubs(std::index_sequence<kI...>) {
  return {MemoryRow<kPrefix, static_cast<uint8_t>(0xd8 + kI)>(std::make_index_sequence<8>())...};
}
constexpr auto kRegisterStubs = RegisterStubs(std::make_index_sequence<8>());
constexpr auto kMemoryStubs = MemoryStubs<0x90>(std::make_index_sequence<8>());
constexpr auto kMemoryStubs16 = MemoryStubs<0x66>(std::make_index_sequence<8>());

// The documented register forms (SDM Vol. 2, Tables ), ModRM C0-FF per opcode.
// FNCLEX, FNINIT and FNSTSW AX are insn_fpu.cc's; undocumented aliases (FSTP1, FCOM2, ...)
// and the 8087/287 no-ops (FENI, FDISI, FSETPM) are not offered.
bool DocumentedRegisterForm(uint8_t opcode, uint8_t modrm) {
  const int j = modrm - 0xc0;
  switch (opcode) {
    case 0xd8:
      return true;
    case 0xd9:  // FLD, FXCH, FNOP, FCHS, FABS, FTST, FXAM, the constants, F0-FF
      return j < 0x10 || j == 0x10 || j == 0x20 || j == 0x21 || j == 0x24 || j == 0x25 ||
             (j >= 0x28 && j <= 0x2e) || j >= 0x30;
    case 0xda:  // FCMOVB/E/BE/U, FUCOMPP
      return j < 0x20 || j == 0x29;
    case 0xdb:  // FCMOVNB/NE/NBE/NU, FUCOMI, FCOMI
      return j < 0x20 || (j >= 0x28 && j < 0x38);
    case 0xdc:  // FADD, FMUL, FSUBR, FSUB, FDIVR, FDIV to ST(i)
      return j < 0x10 || j >= 0x20;
    case 0xdd:  // FFREE, FST, FSTP, FUCOM, FUCOMP
      return j < 0x08 || (j >= 0x10 && j < 0x30);
    case 0xde:  // FADDP, FMULP, FCOMPP, FSUBRP, FSUBP, FDIVRP, FDIVP
      return j < 0x10 || j == 0x19 || j >= 0x20;
    default:  // DF: FUCOMIP, FCOMIP
      return j >= 0x28 && j < 0x38;
  }
}

enum class MemKind { kNone, kLoad, kStore };
struct MemoryForm {
  MemKind kind = MemKind::kNone;
  size_t bytes = 0;  // 0: the environment (14/28) or the whole state (94/108)
  bool whole_state = false;
};

// The memory forms by opcode and /digit: what each reads or writes and how much.
MemoryForm MemoryFormOf(uint8_t opcode, int digit) {
  using enum MemKind;
  switch (opcode) {
    case 0xd8:  // m32fp arithmetic and compares
    case 0xda:  // m32int
      return {kLoad, 4};
    case 0xdc:  // m64fp
      return {kLoad, 8};
    case 0xde:  // m16int
      return {kLoad, 2};
    case 0xd9:
      if (digit == 0) return {kLoad, 4};                 // FLD m32fp
      if (digit == 2 || digit == 3) return {kStore, 4};  // FST(P) m32fp
      if (digit == 4) return {kLoad, 0};                 // FLDENV
      if (digit == 6) return {kStore, 0};                // FNSTENV
      return {};
    case 0xdb:
      if (digit == 0) return {kLoad, 4};                 // FILD m32int
      if (digit >= 1 && digit <= 3) return {kStore, 4};  // FISTTP, FIST, FISTP m32int
      if (digit == 5) return {kLoad, 10};                // FLD m80fp
      if (digit == 7) return {kStore, 10};               // FSTP m80fp
      return {};
    case 0xdd:
      if (digit == 0) return {kLoad, 8};                 // FLD m64fp
      if (digit >= 1 && digit <= 3) return {kStore, 8};  // FISTTP m64int, FST(P) m64fp
      if (digit == 4) return {kLoad, 0, true};           // FRSTOR
      if (digit == 6) return {kStore, 0, true};          // FNSAVE
      return {};
    default:  // DF
      switch (digit) {
        case 0:
          return {kLoad, 2};  // FILD m16int
        case 4:
          return {kLoad, 10};  // FBLD
        case 5:
          return {kLoad, 8};  // FILD m64int
        case 6:
          return {kStore, 10};  // FBSTP
        case 7:
          return {kStore, 8};  // FISTP m64int
        default:
          return {kStore, 2};  // FISTTP, FIST, FISTP m16int
      }
  }
}

// The no-wait forms among them (FNSTENV, FNSAVE) skip the pending-exception check.
bool NoWait(uint8_t opcode, int digit) { return (opcode == 0xd9 || opcode == 0xdd) && digit == 6; }

// Environment and state forms: they set the FPU pointers themselves; the others record the
// instruction's (FOP, FIP and, with a memory operand, FDP).
bool ControlForm(uint8_t opcode, int digit) {
  return (opcode == 0xd9 || opcode == 0xdd) && (digit == 4 || digit == 6);
}

// The MXCSR bits the host's FXRSTOR accepts, from its own FXSAVE.
uint32_t HostMxcsrMask() {
  alignas(16) std::array<uint8_t, 512> image{};
  asm volatile("fxsave64 %0" : "=m"(image));
  uint32_t mask;
  std::memcpy(&mask, &image[FxState::kMxcsrMaskOffset], 4);
  return mask != 0 ? mask : 0xffbf;  // 0 means the default mask (SDM Vol. 1 11.6.6)
}

}  // namespace

StepStatus X87Arithmetic(Interpreter& cpu, const DecodedInsn& insn) {
  CpuState& s = cpu.state();
  const uint8_t opcode = insn.opcode() & 0xff;
  const int digit = insn.group_op();
  const bool mem = !insn.is_reg_form();
  MemoryForm form;
  if (mem) {
    form = MemoryFormOf(opcode, digit);
    if (form.kind == MemKind::kNone) return cpu.Unimplemented();
  } else if (!DocumentedRegisterForm(opcode, insn.modrm())) {
    return cpu.Unimplemented();
  }
  const bool environment = mem && form.bytes == 0;
  // Real mode lays the environment out differently from the host's protected-mode format.
  if (environment && !(s.cr0 & kCr0Pe)) return cpu.Unimplemented();
  if (s.cr0 & (kCr0Em | kCr0Ts)) return cpu.Raise(kDeviceNotAvailable);
  FxState& fx = s.fx;
  // A waiting instruction takes a pending unmasked exception first (#MF). The unmasked flags
  // are checked as well as ES, so an image restored from elsewhere with ES clear cannot make
  // the host's own instruction fault.
  const bool pending = (fx.fsw() & kFswEs) || (fx.fsw() & kFswExceptions & ~fx.fcw());
  if (pending && !NoWait(opcode, digit)) return cpu.Raise(kMathFault);

  const bool small_env = insn.operand_size() == kSize16;
  size_t bytes = form.bytes;
  if (environment) bytes = form.whole_state ? (small_env ? 94 : 108) : (small_env ? 14 : 28);
  const uint64_t ea = mem ? cpu.EffectiveAddress(insn) : 0;

  static const uint32_t host_mxcsr_mask = HostMxcsrMask();
  X87Frame frame;
  frame.guest = fx.image;
  // The instruction does not read MXCSR; a default one keeps the host's FXRSTOR from #GP on
  // a value this host does not implement.
  const uint32_t mxcsr = fx.mxcsr();
  const uint32_t safe_mxcsr = 0x1f80 & host_mxcsr_mask;
  std::memcpy(&frame.guest[FxState::kMxcsr], &safe_mxcsr, 4);
  frame.rflags = 0x202 | (s.flags.Get() & kFlagsArith);
  frame.memory.fill(0);
  std::array<uint8_t, 112> before{};
  if (form.kind == MemKind::kLoad) {
    if (!cpu.ReadBytes(insn.segment(), ea, std::span(frame.memory).first(bytes),
                       insn.address_size()))
      return cpu.MemoryFault();
  }
  Stub stub = !mem                       ? kRegisterStubs[opcode - 0xd8][insn.modrm() - 0xc0]
              : small_env && environment ? kMemoryStubs16[opcode - 0xd8][digit]
                                         : kMemoryStubs[opcode - 0xd8][digit];
  const X87Frame input = frame;
  if (form.kind == MemKind::kStore) {
    // A store suppressed by an unmasked exception leaves memory alone. Which happened is
    // seen by running from two different buffer contents: an untouched buffer keeps its.
    frame.memory.fill(0x5a);
    before = frame.memory;
  }
  stub(&frame);
  bool stored = form.kind == MemKind::kStore;
  if (stored && frame.memory == before) {
    X87Frame again = input;
    again.memory.fill(0xa5);
    const auto fill = again.memory;
    stub(&again);
    stored = again.memory != fill;
  }
  if (stored && !cpu.WriteBytes(insn.segment(), ea, std::span(frame.memory).first(bytes),
                                insn.address_size()))
    return cpu.MemoryFault();

  // Commit: the new image, with the guest's MXCSR and MXCSR_MASK, and the guest's own
  // instruction and data pointers in place of the stub's.
  std::array<uint8_t, 512> out = frame.guest;
  std::memcpy(&out[FxState::kMxcsr], &mxcsr, 4);
  std::memcpy(&out[FxState::kMxcsrMaskOffset], &FxState::kMxcsrMask, 4);
  std::memcpy(&out[FxState::kXmm], &fx.image[FxState::kXmm], out.size() - FxState::kXmm);
  if (!ControlForm(opcode, digit) || !mem) {
    const uint16_t fop = static_cast<uint16_t>(((opcode & 7) << 8) | insn.modrm());
    std::memcpy(&out[FxState::kFop], &fop, 2);
    const uint64_t fip = s.rip;
    std::memcpy(&out[FxState::kFip], &fip, 8);
    const uint64_t fdp = mem ? ea : fx.Get<uint64_t>(FxState::kFdp);
    std::memcpy(&out[FxState::kFdp], &fdp, 8);
  }
  out[5] = 0;
  fx.image = out;
  for (int i = 0; i < 8; ++i) std::memset(fx.st(i) + 10, 0, 6);
  // FCOMI, FUCOMI and their popping forms set ZF, PF and CF and clear OF, SF and AF.
  if (!mem && (opcode == 0xdb || opcode == 0xdf) && insn.modrm() >= 0xe8 && insn.modrm() < 0xf8) {
    s.flags.SetArith(frame.rflags & kFlagsArith);
  }
  return StepStatus::kOk;
}

}  // namespace vireo::emu
