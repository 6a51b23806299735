// Interpreter unit tests: hand-checked results for each instruction group and the MMU. The
// exhaustive check is the differential harness against the real CPU (tests/emu_diff).
#include "accel/emu/interpreter.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <vector>

namespace vireo::emu {
namespace {

constexpr uint64_t kCode = 0x10000, kData = 0x20000, kStack = 0x30000;

struct FixedEnv : CpuEnvironment {
  void Cpuid(uint32_t leaf, uint32_t, uint32_t out[4]) override {
    out[0] = leaf, out[1] = 2, out[2] = 3, out[3] = 4;
  }
  uint64_t ReadTsc() override { return 0x1122334455667788ull; }
};

class InterpreterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RamRange range{0, 1 << 20};
    auto m = GuestMemory::Create({&range, 1}, {});
    ASSERT_TRUE(m);
    memory_.emplace(std::move(*m));
    // 4-level identity map of the first GiB (one 1 GiB page, user, writable), CPL3 64-bit.
    ASSERT_TRUE(memory_->WriteObj<uint64_t>(0x1000, 0x2000 | 7));
    ASSERT_TRUE(memory_->WriteObj<uint64_t>(0x2000, 0x0 | 0x87));
    state_.cr0 = kCr0Pe | kCr0Pg | kCr0Wp;
    state_.cr3 = 0x1000;
    state_.cr4 = kCr4Pae;
    state_.efer = kEferLme | kEferLma | kEferNxe;
    state_.seg[kCs].l = true;
    state_.seg[kCs].dpl = 3;
    state_.seg[kSs].dpl = 3;
    state_.rip = kCode;
    state_.gpr[kRsp] = kStack;
  }

  StepStatus Run(std::vector<uint8_t> code, int steps = 1) {
    EXPECT_TRUE(memory_->Write(state_.rip, code));
    Interpreter cpu(state_, *memory_, env_);
    StepStatus s = StepStatus::kOk;
    for (int i = 0; i < steps && s == StepStatus::kOk; ++i) s = cpu.Step();
    last_exception_ = cpu.exception();
    return s;
  }

  std::optional<GuestMemory> memory_;
  CpuState state_;
  FixedEnv env_;
  Exception last_exception_;
};

TEST_F(InterpreterTest, AddSetsCarryOverflowAndLazyFlags) {
  state_.gpr[kRax] = 0x7fffffff;
  state_.gpr[kRbx] = 1;
  ASSERT_EQ(Run({0x01, 0xd8}), StepStatus::kOk);  // add eax, ebx
  EXPECT_EQ(state_.gpr[kRax], 0x80000000u);
  const uint64_t f = state_.flags.Get();
  EXPECT_TRUE(f & kOf);
  EXPECT_TRUE(f & kSf);
  EXPECT_FALSE(f & kCf);
  EXPECT_TRUE(f & kAf);
  EXPECT_EQ(state_.rip, kCode + 2);
}

TEST_F(InterpreterTest, ByteRegistersWithAndWithoutRex) {
  state_.gpr[kRax] = 0x1234;
  state_.gpr[kRsi] = 0xff00;
  ASSERT_EQ(Run({0x88, 0xe0}), StepStatus::kOk);  // mov al, ah
  EXPECT_EQ(state_.gpr[kRax], 0x1212u);
  ASSERT_EQ(Run({0x40, 0x88, 0xc6}), StepStatus::kOk);  // mov sil, al (REX)
  EXPECT_EQ(state_.gpr[kRsi], 0xff12u);
}

TEST_F(InterpreterTest, ThirtyTwoBitWritesZeroExtend) {
  state_.gpr[kRcx] = ~0ull;
  ASSERT_EQ(Run({0xb9, 1, 0, 0, 0}), StepStatus::kOk);  // mov ecx, 1
  EXPECT_EQ(state_.gpr[kRcx], 1u);
}

TEST_F(InterpreterTest, DivideByZeroAndOverflowRaiseDe) {
  state_.gpr[kRax] = 5;
  state_.gpr[kRcx] = 0;
  EXPECT_EQ(Run({0xf7, 0xf1}), StepStatus::kException);  // div ecx
  EXPECT_EQ(last_exception_.vector, kDivideError);
  EXPECT_EQ(state_.rip, kCode) << "a fault does not advance RIP";
  state_.gpr[kRax] = 0;
  state_.gpr[kRdx] = 0x8000000000000000ull;
  state_.gpr[kRcx] = ~0ull;
  EXPECT_EQ(Run({0x48, 0xf7, 0xf9}), StepStatus::kException);  // idiv rcx: overflow
  state_.gpr[kRax] = 100;
  state_.gpr[kRdx] = 0;
  state_.gpr[kRcx] = 7;
  ASSERT_EQ(Run({0x48, 0xf7, 0xf1}), StepStatus::kOk);  // div rcx
  EXPECT_EQ(state_.gpr[kRax], 14u);
  EXPECT_EQ(state_.gpr[kRdx], 2u);
}

TEST_F(InterpreterTest, CallPushesReturnAndRetComesBack) {
  // call +3; nop; nop; nop; ret   -> after 2 steps RIP is back after the call
  ASSERT_EQ(Run({0xe8, 0x03, 0, 0, 0, 0x90, 0x90, 0x90, 0xc3}, 2), StepStatus::kOk);
  EXPECT_EQ(state_.rip, kCode + 5);
  EXPECT_EQ(state_.gpr[kRsp], kStack);
}

TEST_F(InterpreterTest, RepMovsbCopiesAndUpdatesRegisters) {
  ASSERT_TRUE(memory_->Write(kData, std::vector<uint8_t>{1, 2, 3, 4, 5}));
  state_.gpr[kRsi] = kData;
  state_.gpr[kRdi] = kData + 0x100;
  state_.gpr[kRcx] = 5;
  ASSERT_EQ(Run({0xf3, 0xa4}), StepStatus::kOk);
  EXPECT_EQ(state_.gpr[kRcx], 0u);
  EXPECT_EQ(state_.gpr[kRdi], kData + 0x105);
  EXPECT_EQ(memory_->ReadObj<uint8_t>(kData + 0x104), 5);
}

TEST_F(InterpreterTest, UnmappedAccessIsAPageFaultWithCr2) {
  // Remap: PML4 entry 1 not present. mov rax, [0x8000000000] (512 GiB) is unmapped.
  state_.gpr[kRbx] = 0x8000000000ull;
  ASSERT_EQ(Run({0x48, 0x8b, 0x03}), StepStatus::kException);
  EXPECT_EQ(last_exception_.vector, kPageFault);
  EXPECT_EQ(last_exception_.error_code, kPfUser);
  EXPECT_EQ(state_.cr2, 0x8000000000ull);
  // A write to a read-only user page from CPL3: present | write | user.
  ASSERT_TRUE(memory_->WriteObj<uint64_t>(0x2000, 0x0 | 0x85));
  state_.gpr[kRbx] = kData;
  ASSERT_EQ(Run({0x48, 0x89, 0x03}), StepStatus::kException);
  EXPECT_EQ(last_exception_.error_code, kPfPresent | kPfWrite | kPfUser);
}

TEST_F(InterpreterTest, UndefinedAndTooLongInstructions) {
  EXPECT_EQ(Run({0x0f, 0x0b}), StepStatus::kException);
  EXPECT_EQ(last_exception_.vector, kInvalidOpcode);
  std::vector<uint8_t> code(15, 0x66);
  code.push_back(0x90);
  EXPECT_EQ(Run(code), StepStatus::kException);
  EXPECT_EQ(last_exception_.vector, kGeneralProtection);
}

TEST_F(InterpreterTest, CpuidRdtscAndPrivilegedInstructions) {
  state_.gpr[kRax] = 7;
  ASSERT_EQ(Run({0x0f, 0xa2}), StepStatus::kOk);
  EXPECT_EQ(state_.gpr[kRax], 7u);
  EXPECT_EQ(state_.gpr[kRdx], 4u);
  EXPECT_EQ(Run({0xf4}), StepStatus::kException) << "HLT at CPL3";
  EXPECT_EQ(Run({0xe6, 0x80}), StepStatus::kException) << "OUT at CPL3, IOPL 0";
}

TEST_F(InterpreterTest, SelfModifyingCodeIsSeenThroughTheDecodeCache) {
  // 0: mov al, 1; 2: mov bl, al; 4: mov byte [rip-10], 2 (the imm of "mov al"); 11: jmp 0.
  // The second "mov al" was cached decoded as "mov al, 1": the store must drop it.
  const std::vector<uint8_t> code = {0xb0, 0x01, 0x88, 0xc3, 0xc6, 0x05, 0xf6,
                                     0xff, 0xff, 0xff, 0x02, 0xeb, 0xf3};
  ASSERT_EQ(Run(code, 5), StepStatus::kOk);
  EXPECT_EQ(state_.gpr[kRbx] & 0xff, 1u);
  EXPECT_EQ(state_.gpr[kRax] & 0xff, 2u) << "executed the stale decode";
  EXPECT_EQ(state_.rip, kCode + 2);
}

// With more than one vCPU, a vCPU's own store to its code still reaches its decode cache
// (the tracker no longer makes it drop everything for its own stores), and the store still
// starts a new generation for the others.
TEST_F(InterpreterTest, OwnStoreToCodeIsSeenWithACodeTrackerAndTellsTheOthers) {
  CodeTracker tracker;
  const std::vector<uint8_t> code = {0xb0, 0x01, 0x88, 0xc3, 0xc6, 0x05, 0xf6,
                                     0xff, 0xff, 0xff, 0x02, 0xeb, 0xf3};
  ASSERT_TRUE(memory_->Write(kCode, code));
  Interpreter cpu(state_, *memory_, env_);
  cpu.set_code_tracker(&tracker);
  const uint64_t before = tracker.generation();
  for (int i = 0; i < 5; ++i) ASSERT_EQ(cpu.Step(), StepStatus::kOk);
  EXPECT_EQ(state_.gpr[kRbx] & 0xff, 1u);
  EXPECT_EQ(state_.gpr[kRax] & 0xff, 2u) << "executed the stale decode";
  EXPECT_GT(tracker.generation(), before) << "the other vCPUs were not told";
}

// Cross-modifying code (SDM Vol. 3 8.1.3): CPU B stores to an instruction CPU A has
// already decoded; A must run the new bytes once it executes a serializing instruction
// (CPUID here). Without the shared tracker A's decode cache would keep "mov sil, 1".
TEST_F(InterpreterTest, CodeAnotherCpuWroteIsSeenAfterASerializingInstruction) {
  CodeTracker tracker;
  // A at kCode: mov sil, 1; cpuid; jmp kCode.
  ASSERT_TRUE(
      memory_->Write(kCode, std::vector<uint8_t>{0x40, 0xb6, 0x01, 0x0f, 0xa2, 0xeb, 0xf9}));
  // B at kCode + 0x100: mov byte [rip - 0x105], 2 (the immediate of A's "mov sil").
  ASSERT_TRUE(memory_->Write(kCode + 0x100,
                             std::vector<uint8_t>{0xc6, 0x05, 0xfb, 0xfe, 0xff, 0xff, 0x02}));
  CpuState b_state = state_;
  b_state.rip = kCode + 0x100;
  Interpreter a(state_, *memory_, env_);
  Interpreter b(b_state, *memory_, env_);
  a.set_code_tracker(&tracker);
  b.set_code_tracker(&tracker);
  for (int i = 0; i < 3; ++i) ASSERT_EQ(a.Step(), StepStatus::kOk);  // decodes and caches
  EXPECT_EQ(state_.gpr[kRsi] & 0xff, 1u);
  ASSERT_EQ(b.Step(), StepStatus::kOk);
  for (int i = 0; i < 4; ++i) ASSERT_EQ(a.Step(), StepStatus::kOk);  // mov, cpuid, jmp, mov
  EXPECT_EQ(state_.gpr[kRsi] & 0xff, 2u) << "CPU A ran its stale decode after CPUID";
  // The same through a slice boundary (EmuVcpu calls SyncCode between slices).
  ASSERT_TRUE(memory_->Write(kCode + 0x106, std::vector<uint8_t>{0x03}));  // B now stores 3
  b_state.rip = kCode + 0x100;
  ASSERT_EQ(b.Step(), StepStatus::kOk);
  a.SyncCode();
  state_.rip = kCode;
  ASSERT_EQ(a.Step(), StepStatus::kOk);
  EXPECT_EQ(state_.gpr[kRsi] & 0xff, 3u);
}

// Speed of a simple loop (load, decrement, branch): printed, never asserted, so a slow
// machine does not fail the suite. docs/emulator.md records the numbers.
TEST_F(InterpreterTest, LoopSpeedIsPrinted) {
  // mov ecx, 3333333; loop: add rax, [rsi]; dec ecx; jnz loop; hlt (#GP at CPL3 ends it)
  const std::vector<uint8_t> code = {0xb9, 0xd5, 0xdc, 0x32, 0x00, 0x48, 0x03,
                                     0x06, 0xff, 0xc9, 0x75, 0xf9, 0xf4};
  ASSERT_TRUE(memory_->Write(kCode, code));
  ASSERT_TRUE(memory_->WriteObj<uint64_t>(kData, 1));
  state_.gpr[kRsi] = kData;
  Interpreter cpu(state_, *memory_, env_);
  uint64_t retired = 0;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(cpu.Run(20'000'000, &retired), StepStatus::kException);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(retired, 1 + 3 * 3333333u);
  EXPECT_EQ(state_.gpr[kRax], 3333333u);
  std::printf("[ speed    ] %llu instructions in %.3f s: %.1f M instructions/s\n",
              static_cast<unsigned long long>(retired), took.count(),
              static_cast<double>(retired) / took.count() / 1e6);
}

}  // namespace
}  // namespace vireo::emu
