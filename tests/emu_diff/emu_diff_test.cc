// Differential harness: every case runs as CPL3 code on the real CPU (KVM) and on the
// software CPU from the same registers, flags, x87/SSE state and memory; GPRs, RIP, RFLAGS,
// FCW/FSW/FTW/MXCSR/ST0-7/XMM0-15 and the scratch memory must match, or both must fault. Targeted
// cases cover each instruction group with edge operands; random cases are generated instructions
// the decoder accepts.
//
// Long mode: VIREO_EMU_DIFF_RANDOM=N runs N random cases (default 3000), and
// VIREO_EMU_DIFF_RANDOM_SSE=N N random SSE cases (default 1000), VIREO_EMU_DIFF_SEED=N another
// random stream (default 42); mismatches are written as
// replayable lines to $VIREO_EMU_DIFF_SAVE (a file) when set.
#include <cstdlib>
#include <vector>

#include "accel/emu/decoder.h"
#include "accel/emu/opcode_table.h"
#include "harness.h"

namespace vireo::emu_diff {

TEST_F(EmuDiff, AluRegisterAndImmediateForms) {
  for (int size = 0; size < 4; ++size) {
    for (int op = 0; op < 8; ++op) {
      Many(Sized(size, {uint8_t(op * 8 + 1), 0xd8}, true));  // op eax, ebx
      Many(Sized(size, {0x83, uint8_t(0xc0 | op << 3), uint8_t(h_.rng())}, false));
      if (size > 0)
        Many(Sized(size, {0x81, uint8_t(0xc0 | op << 3), 0x00, 0x80, 0xff, 0xff}, false));
      Many(Sized(size, {uint8_t(op * 8 + 1), 0x1e}, true));  // op [rsi], ebx
      Many(Sized(size, {uint8_t(op * 8 + 3), 0x1e}, true));  // op ebx, [rsi]
    }
    for (int g = 0; g < 4; ++g)
      Many(Sized(size, {0xf7, uint8_t(0xc3 | (g == 0 ? 0 : g) << 3)}, true));
    Many(Sized(size, {0xff, 0xc3}, true));  // inc
    Many(Sized(size, {0xff, 0xcb}, true));  // dec
    Many(Sized(size, {0x85, 0xd8}, true));  // test
  }
}

TEST_F(EmuDiff, MultiplyAndDivide) {
  for (int size = 0; size < 4; ++size) {
    for (int g = 4; g < 8; ++g) Many(Sized(size, {0xf7, uint8_t(0xc3 | g << 3)}, true), 40);
    if (size > 0) {
      Many(Sized(size, {0x0f, 0xaf, 0xc3}, false), 30);  // imul eax, ebx
      Many(Sized(size, {0x6b, 0xc3, uint8_t(h_.rng())}, false), 30);
    }
  }
}

TEST_F(EmuDiff, ShiftsAndRotatesWithEveryCount) {
  const uint8_t counts[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255};
  for (int size = 0; size < 4; ++size) {
    for (int op = 0; op < 8; ++op) {
      for (uint8_t c : counts) {
        for (int i = 0; i < 3; ++i) {
          CaseState s = h_.StartState();
          s.gpr[emu::kRcx] = (s.gpr[emu::kRcx] & ~0xffull) | c;
          h_.Check(Sized(size, {0xd3, uint8_t(0xc0 | op << 3)}, true), s);  // op eax, cl
        }
        Many(Sized(size, {0xc1, uint8_t(0xc0 | op << 3), c}, true), 2);
      }
      Many(Sized(size, {0xd1, uint8_t(0xc0 | op << 3)}, true), 4);
    }
  }
}

// Groups that once had open mismatches (undefined flags of this CPU, now matched): set
// VIREO_EMU_DIFF_OPEN=1 to run a new group before its mismatches are closed.
TEST_F(EmuDiff, DoubleShifts) {
  const uint8_t counts[] = {0, 1, 2, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 255};
  for (int size = 2; size < 4; ++size) {
    for (uint8_t c : counts) {
      Many(Sized(size, {0x0f, 0xa4, 0xd8, c}, false), 2);  // shld eax, ebx, c
      Many(Sized(size, {0x0f, 0xac, 0xd8, c}, false), 2);  // shrd eax, ebx, c
    }
  }
  // 16-bit forms up to count 16 (above 16 this CPU's CF is not reproducible: see
  // insn_shift.cc); by CL too.
  for (uint8_t c : {1, 2, 7, 8, 9, 15, 16, 32, 33, 48}) {
    Many(Sized(1, {0x0f, 0xa4, 0xd8, c}, false), 2);
    Many(Sized(1, {0x0f, 0xac, 0xd8, c}, false), 2);
    for (uint8_t op : {0xa5, 0xad}) {
      CaseState s = h_.StartState();
      s.gpr[emu::kRcx] = (s.gpr[emu::kRcx] & ~0xffull) | c;
      h_.Check(Sized(1, {0x0f, op, 0xd8}, false), s);
    }
  }
}

TEST_F(EmuDiff, BitInstructions) {
  for (int size = 1; size < 4; ++size) {
    for (uint8_t op : {0xa3, 0xab, 0xb3, 0xbb}) {
      Many(Sized(size, {0x0f, op, 0xd8}, false));  // bt* eax, ebx
      CaseState s = h_.StartState();
      s.gpr[emu::kRbx] = h_.rng() % 512 - 256;  // bit offsets reaching around [rsi]
      h_.Check(Sized(size, {0x0f, op, 0x1e}, false), s);
    }
    for (int g = 4; g < 8; ++g) Many(Sized(size, {0x0f, 0xba, uint8_t(0xc0 | g << 3), 37}, false));
    Many(Sized(size, {0x0f, 0xbc, 0xc3}, false), 20);  // bsf
    Many(Sized(size, {0x0f, 0xbd, 0xc3}, false), 20);  // bsr
  }
  for (int size = 1; size < 4; ++size) {
    for (uint8_t op : {0xbc, 0xbd, 0xb8}) {  // tzcnt lzcnt popcnt
      std::vector<uint8_t> code{0xf3};
      auto body = Sized(size, {0x0f, op, 0xc3}, false);
      code.insert(code.end(), body.begin(), body.end());
      Many(code, 20);
    }
  }
}

TEST_F(EmuDiff, MovesConditionalsAndExchanges) {
  for (int size = 0; size < 4; ++size) {
    Many(Sized(size, {0x89, 0xd8}, true));
    Many(Sized(size, {0x87, 0xd8}, true));        // xchg
    Many(Sized(size, {0x87, 0x1e}, true));        // xchg [rsi]
    Many(Sized(size, {0x0f, 0xc1, 0xd8}, true));  // xadd
    Many(Sized(size, {0x0f, 0xc1, 0x1e}, true));
    Many(Sized(size, {0x0f, 0xb1, 0xd8}, true));  // cmpxchg
    Many(Sized(size, {0x0f, 0xb1, 0x1e}, true));
    Many(Sized(size, {0x89, 0x5e, 0x10}, true));  // mov [rsi+16], ebx
  }
  for (int cc = 0; cc < 16; ++cc) {
    Many({0x0f, uint8_t(0x40 + cc), 0xc3}, 6);  // cmovcc eax, ebx
    Many({0x48, 0x0f, uint8_t(0x40 + cc), 0xc3}, 6);
    Many({0x0f, uint8_t(0x90 + cc), 0xc0}, 6);        // setcc al
    Many({uint8_t(0x70 + cc), 0x02, 0xff, 0xc1}, 6);  // jcc over inc ecx
  }
  for (uint8_t op : {0xb6, 0xb7, 0xbe, 0xbf}) {
    Many({0x0f, op, 0xc3});
    Many({0x48, 0x0f, op, 0xc3});
  }
  Many({0x48, 0x63, 0xc3});
  Many({0x0f, 0xc8});
  Many({0x48, 0x0f, 0xcb});
  Many({0x98});
  Many({0x48, 0x98});
  Many({0x99});
  Many({0x48, 0x99});
  Many({0x9f});              // lahf
  Many({0x9e});              // sahf
  Many({0x0f, 0xc7, 0x0e});  // cmpxchg8b [rsi]
  Many({0x48, 0x0f, 0xc7, 0x0e});
  Many({0x48, 0x8d, 0x44, 0x9e, 0x7f});  // lea rax, [rsi+rbx*4+127]
}

// A flag-setting ALU instruction straight before its consumer: the interpreter evaluates
// conditions after CMP/SUB and TEST/AND/OR/XOR from the recorded operands (flags.h), and
// blocks run specialized handlers for these forms (insn_fast.cc).
TEST_F(EmuDiff, ConditionsRightAfterTheirAluInstruction) {
  for (int size = 0; size < 4; ++size) {
    for (uint8_t op : {0x39, 0x29, 0x85, 0x21, 0x31, 0x01}) {  // cmp sub test and xor add
      for (int cc = 0; cc < 16; ++cc) {
        std::vector<uint8_t> code = Sized(size, {op, 0xc3}, op != 0x85);
        if (size == 0 && op == 0x85) code.back() = 0xc3, code[code.size() - 2] = 0x84;
        std::vector<uint8_t> jcc8 = code, jcc32 = code, set = code;
        jcc8.insert(jcc8.end(), {uint8_t(0x70 + cc), 0x02, 0xff, 0xc1});  // jcc over inc ecx
        jcc32.insert(jcc32.end(), {0x0f, uint8_t(0x80 + cc), 2, 0, 0, 0, 0xff, 0xc1});
        set.insert(set.end(), {0x0f, uint8_t(0x90 + cc), 0xc1});  // setcc cl
        Many(jcc8, 3);
        Many(jcc32, 2);
        Many(set, 2);
      }
    }
  }
}

TEST_F(EmuDiff, StackAndStrings) {
  Many({0x53, 0x5a});  // push rbx; pop rdx
  Many({0x66, 0x53, 0x66, 0x5a});
  Many({0x9c, 0x5a});  // pushf; pop rdx
  Many({0x6a, 0x80, 0x68, 1, 2, 3, 4});
  Many({0x55, 0x48, 0x89, 0xe5, 0xc9});  // push rbp; mov rbp, rsp; leave
  Many({0xc8, 0x20, 0x00, 0x03});        // enter 32, 3 (rbp random: faults or not)
  Many({0xe8, 0x00, 0, 0, 0, 0x5a});     // call next; pop rdx
  for (uint8_t op : {0xa4, 0xa5, 0xa6, 0xa7, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf}) {
    for (uint8_t prefix : {0x00, 0xf3, 0xf2}) {
      for (int size = 0; size < 4; ++size) {
        for (int i = 0; i < 6; ++i) {
          std::vector<uint8_t> code;
          if (prefix) code.push_back(prefix);
          auto body = Sized(size == 0 ? 2 : size, {op}, false);
          if (size == 0) body.back() = op & 0xfe;
          code.insert(code.end(), body.begin(), body.end());
          CaseState s = h_.StartState();
          s.gpr[emu::kRcx] = h_.rng() % 40;
          h_.Check(code, s);
        }
      }
    }
  }
}

// Random instructions: generated bytes the decoder accepts, restricted to implemented,
// deterministic, non-branching opcodes whose memory operands stay in the scratch area.
bool RandomCandidate(const emu::DecodedInsn& insn) {
  const uint16_t op = insn.opcode();
  const auto& info = emu::DecodeTable()[op];
  if (info.branch64) return false;
  switch (op) {
    case 0x9d:
    case 0xf4:
    case 0xcc:
    case 0xcd:
    case 0xc8:  // popf (TF), hlt, int, enter
    case 0xff:
      if (op == 0xff && insn.group_op() <= 1) break;
      return false;
    case emu::kMap0F | 0xa2:
    case emu::kMap0F | 0x31:  // cpuid, rdtsc
      return false;
    default:
      break;
  }
  if ((op & 0xf0) == 0xe0 && op < 0x100) return false;  // loop, in/out, call, jmp
  // SYSCALL enters a kernel that is not there (LSTAR 0): the emulator runs on at CPL0.
  if (op == (emu::kMap0F | 0x05)) return false;
  // 0F 01: RDTSCP reads the clock; the descriptor-table forms are unit-tested.
  if (op == (emu::kMap0F | 0x01)) return false;
  // BT* with a register bit offset on memory reaches far outside the scratch area, where
  // the KVM run's writes would be read by the emulator's (the group above covers them).
  if ((op == (emu::kMap0F | 0xa3) || op == (emu::kMap0F | 0xab) || op == (emu::kMap0F | 0xb3) ||
       op == (emu::kMap0F | 0xbb)) &&
      insn.has_memory_operand())
    return false;
  // MOV r/m, ES: this host's KVM (kvm_pvm) leaves ES holding a selector of its own (0x28 or
  // 0x30 seen) whatever the VMM set, so the oracle's ES is not the state both runs share. A
  // 10M-case run found 30 such cases and no other mismatch.
  if (op == 0x8c && insn.group_op() == 0) return false;
  // Segment loads (MOV Sreg, POP FS/GS, LSS/LFS/LGS, RETF) and selector tests (LAR, LSL,
  // VERR, VERW) read a descriptor: the emulator reads the harness's GDT, but kvm_pvm runs
  // CPL3 on a GDT of its own, so a selector that is valid in one can fault in the other (a
  // 300k-case run: MOV GS, 0x22 loads in the emulator's Linux-layout GDT and faults under
  // kvm_pvm). Unit-tested in emu_modes_test.
  if (op == 0x8e || op == 0xca || op == 0xcb || op == (emu::kMap0F | 0xa1) ||
      op == (emu::kMap0F | 0xa9) || op == (emu::kMap0F | 0xb2) || op == (emu::kMap0F | 0xb4) ||
      op == (emu::kMap0F | 0xb5) || op == (emu::kMap0F | 0x02) || op == (emu::kMap0F | 0x03) ||
      (op == (emu::kMap0F | 0x00) && insn.group_op() >= 4))
    return false;
  // SLDT/STR to memory (0F 00 /0 /1): the SDM stores 16 bits whatever the operand size, and
  // so does the emulator; a 1M-case shard (seed 103) saw the KVM run write 8 (REX.W). Our
  // guess, not verified: this host's kvm_pvm emulates them for CPL3 itself. The register
  // forms stay in. Unit-tested in emu_exception_test.
  if (op == (emu::kMap0F | 0x00) && insn.group_op() <= 1 && insn.has_memory_operand()) {
    return false;
  }
  // FXSAVE/FXRSTOR (0F AE /0 /1 memory): kvm_pvm completes misaligned ones the CPU faults
  // on (see X87ControlMxcsrAndFxsave); the aligned ones are in that group.
  if (op == (emu::kMap0F | 0xae) && insn.has_memory_operand() && insn.group_op() <= 1) return false;
  // INS/OUTS: I/O exits (unit-tested); KVM would complete a pending one on the next run.
  if (op >= 0x6c && op <= 0x6f) return false;
  // 16-bit SHLD/SHRD: counts above 16 leave a CF this CPU does not derive from the operands.
  if ((op == (emu::kMap0F | 0xa4) || op == (emu::kMap0F | 0xa5) || op == (emu::kMap0F | 0xac) ||
       op == (emu::kMap0F | 0xad)) &&
      insn.operand_size() == emu::kSize16)
    return false;
  if (insn.has_moffs()) return false;
  if (insn.has_memory_operand()) {
    if (insn.rip_relative() || insn.index() != emu::kNoReg) return false;
    const uint8_t b = insn.base();
    if (b != emu::kRsi && b != emu::kRdi && b != emu::kRsp) return false;
    if (insn.disp() < -128 || insn.disp() > 127 || insn.address_size() != emu::kSize64)
      return false;
  }
  return true;
}

TEST_F(EmuDiff, RandomInstructions) {
  int target = 3000;
  if (const char* n = std::getenv("VIREO_EMU_DIFF_RANDOM")) target = std::atoi(n);
  h_.allow_unimplemented = true;
  int generated = 0;
  while (generated < target) {
    uint8_t bytes[15];
    for (auto& b : bytes) b = static_cast<uint8_t>(h_.rng());
    if (h_.rng() % 3 == 0) bytes[0] = 0x48 | (h_.rng() & 7);
    emu::DecodedInsn insn;
    if (emu::Decoder::Decode(bytes, 15, emu::CpuMode::kLong64, &insn) != emu::DecodeStatus::kOk)
      continue;
    if (!RandomCandidate(insn)) continue;
    std::vector<uint8_t> code(bytes, bytes + insn.length());
    CaseState s = h_.StartState();
    s.gpr[emu::kRcx] = h_.rng() % 40;  // REP counts stay inside the scratch area
    ++generated;
    h_.Check(code, s);
  }
}

}  // namespace vireo::emu_diff
