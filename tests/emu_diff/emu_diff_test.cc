// Differential harness: every case runs as CPL3 code on the real CPU (KVM) and on the
// software CPU from the same registers, flags and memory; GPRs, RIP, RFLAGS and the scratch
// memory must match, or both must fault. Targeted cases cover each instruction group with
// edge operands; random cases are generated instructions the decoder accepts.
//
// Long mode: VIREO_EMU_DIFF_RANDOM=N runs N random cases (default 3000); mismatches are
// written as replayable lines to $VIREO_EMU_DIFF_SAVE (a file) when set.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>

#include <fmt/format.h>

#include "accel/emu/decoder.h"
#include "accel/emu/interpreter.h"
#include "accel/emu/opcode_table.h"
#include "cpl3_machine.h"

namespace vireo::emu_diff {
namespace {

constexpr uint64_t kEdges[] = {0,
                               1,
                               2,
                               0x7f,
                               0x80,
                               0xff,
                               0x7fff,
                               0x8000,
                               0xffff,
                               0x7fffffff,
                               0x80000000,
                               0xffffffff,
                               0x7fffffffffffffffull,
                               0x8000000000000000ull,
                               ~0ull,
                               0x123456789abcdef0ull};

struct Harness {
  std::unique_ptr<Cpl3Machines> machines;
  std::mt19937_64 rng{42};
  int cases = 0, mismatches = 0, both_faulted = 0, unimplemented = 0;
  bool allow_unimplemented = false;  // random cases: a known gap, counted, not a mismatch
  FILE* save = nullptr;

  uint64_t Edge() { return rng() % 4 == 0 ? rng() : kEdges[rng() % std::size(kEdges)]; }

  CaseState StartState() {
    CaseState s;
    for (auto& g : s.gpr) g = Edge();
    s.gpr[emu::kRsp] = kStackTop;
    s.gpr[emu::kRsi] = kScratchAddr + 0x400 + (rng() % 64) * 8;
    s.gpr[emu::kRdi] = kScratchAddr + 0x800 + (rng() % 64) * 8;
    // Arithmetic flags and DF at random; IF set (CPL3 cannot clear it anyway).
    s.rflags = 0x202 | (rng() & (emu::kArithFlags | emu::kDf));
    return s;
  }

  std::vector<uint8_t> Scratch() {
    std::vector<uint8_t> s(kScratchSize);
    for (auto& b : s) b = static_cast<uint8_t>(rng());
    return s;
  }

  // Runs one case on both machines and compares.
  void Check(const std::vector<uint8_t>& code, const CaseState& start) {
    auto scratch = Scratch();
    CaseResult hw = machines->RunKvm(code, start, scratch);

    CaseResult sw = machines->RunEmu(code, start, scratch);
    if (allow_unimplemented && sw.outcome == Outcome::kOther && sw.detail == "status 5") {
      ++unimplemented;
      return;
    }
    ++cases;
    std::string why;
    if (hw.outcome == Outcome::kOther) {
      why = "kvm: " + hw.detail;
    } else if (hw.outcome != sw.outcome) {
      why = fmt::format("outcome hw {} sw {} ({})", int(hw.outcome), int(sw.outcome), sw.detail);
    } else if (hw.outcome == Outcome::kFaulted) {
      ++both_faulted;
      return;
    } else {
      for (int i = 0; i < 16; ++i) {
        if (hw.state.gpr[i] != sw.state.gpr[i])
          why += fmt::format("r{} hw {:#x} sw {:#x}; ", i, hw.state.gpr[i], sw.state.gpr[i]);
      }
      if (hw.state.rip != sw.state.rip)
        why += fmt::format("rip hw {:#x} sw {:#x}; ", hw.state.rip, sw.state.rip);
      if (hw.state.rflags != sw.state.rflags)
        why += fmt::format("rflags hw {:#x} sw {:#x}; ", hw.state.rflags, sw.state.rflags);
      if (hw.scratch != sw.scratch) why += "scratch memory differs; ";
    }
    if (why.empty()) return;
    ++mismatches;
    std::string hex;
    for (uint8_t b : code) hex += fmt::format("{:02x}", b);
    std::string regs;
    for (uint64_t g : start.gpr) regs += fmt::format("{:x},", g);
    const std::string line =
        fmt::format("code={} rflags={:#x} gpr={} :: {}", hex, start.rflags, regs, why);
    if (save) std::fprintf(save, "%s\n", line.c_str());
    if (mismatches <= 30) ADD_FAILURE() << line;
  }
};

class EmuDiff : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm";
    auto m = Cpl3Machines::Create();
    ASSERT_TRUE(m) << m.error().message;
    h_.machines = std::move(*m);
    if (const char* path = std::getenv("VIREO_EMU_DIFF_SAVE")) h_.save = std::fopen(path, "a");
  }
  void TearDown() override {
    if (h_.save) std::fclose(h_.save);
    std::printf("emu_diff %s: %d cases, %d both faulted, %d mismatches, %d not emulated\n",
                ::testing::UnitTest::GetInstance()->current_test_info()->name(), h_.cases,
                h_.both_faulted, h_.mismatches, h_.unimplemented);
    EXPECT_EQ(h_.mismatches, 0);
  }

  // Prefixes for an operand size: 0 = byte form (opcode - 1), 1 = 66, 2 = none, 3 = REX.W.
  static std::vector<uint8_t> Sized(int size, std::vector<uint8_t> body, bool has_byte_form) {
    std::vector<uint8_t> out;
    if (size == 1) out.push_back(0x66);
    if (size == 3) out.push_back(0x48);
    if (size == 0 && has_byte_form) body[0] -= 1;
    out.insert(out.end(), body.begin(), body.end());
    return out;
  }

  // Runs `code` `n` times from fresh edge-value states.
  void Many(const std::vector<uint8_t>& code, int n = 12) {
    for (int i = 0; i < n; ++i) h_.Check(code, h_.StartState());
  }

  Harness h_;
};

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
    case 0x9b:                // fwait: #MF from the x87 state earlier random cases left
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

}  // namespace
}  // namespace vireo::emu_diff
