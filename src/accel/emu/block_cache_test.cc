// Decoded blocks (block_cache.h) and the specialized handlers they carry (insn_fast.cc):
// what ends a block, the arena's reuse, that a store into a running block is seen, and that
// running by blocks gives exactly what single steps through the generic table give.
#include "accel/emu/block_cache.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "accel/emu/decoder.h"
#include "accel/emu/fast_handlers.h"
#include "accel/emu/interpreter.h"

namespace vireo::emu {
namespace {

constexpr uint64_t kCode = 0x10000, kData = 0x20000, kStack = 0x30000;

DecodedInsn Decode(std::vector<uint8_t> bytes) {
  DecodedInsn insn;
  EXPECT_EQ(Decoder::Decode(bytes.data(), bytes.size(), CpuMode::kLong64, &insn),
            DecodeStatus::kOk);
  return insn;
}

TEST(BlockCacheTest, BranchesAndSystemInstructionsEndABlockDataInstructionsDoNot) {
  EXPECT_FALSE(EndsBlock(Decode({0x48, 0x01, 0xd8})));  // add rax, rbx
  EXPECT_FALSE(EndsBlock(Decode({0x48, 0x8b, 0x06})));  // mov rax, [rsi]
  EXPECT_FALSE(EndsBlock(Decode({0xff, 0xc0})));        // inc eax
  EXPECT_FALSE(EndsBlock(Decode({0x90})));              // nop
  EXPECT_TRUE(EndsBlock(Decode({0xf3, 0x90})));         // pause
  EXPECT_TRUE(EndsBlock(Decode({0x75, 0x00})));         // jne
  EXPECT_TRUE(EndsBlock(Decode({0xff, 0xd0})));         // call rax
  EXPECT_TRUE(EndsBlock(Decode({0xff, 0xe0})));         // jmp rax
  EXPECT_TRUE(EndsBlock(Decode({0xc3})));               // ret
  EXPECT_TRUE(EndsBlock(Decode({0xfb})));               // sti
  EXPECT_TRUE(EndsBlock(Decode({0x9d})));               // popf
  EXPECT_TRUE(EndsBlock(Decode({0x0f, 0x22, 0xd8})));   // mov cr3, rax
  EXPECT_TRUE(EndsBlock(Decode({0x8e, 0xd0})));         // mov ss, ax
  EXPECT_TRUE(EndsBlock(Decode({0xf3, 0x48, 0xa5})));   // rep movsq
  EXPECT_TRUE(EndsBlock(Decode({0x0f, 0x28, 0xc1})));   // movaps: not in the plain set
}

TEST(BlockCacheTest, BlockGoesOnPastJccAndStopsAfterOtherBranchesAndAtThePageEnd) {
  BlockCache blocks;
  DecodeCache decodes;
  // add rax, rbx; nop; je +0; nop; jmp +0; nop
  const std::vector<uint8_t> code = {0x48, 0x01, 0xd8, 0x90, 0x74, 0x00, 0x90, 0xeb, 0x00, 0x90};
  const Block* b =
      blocks.Build(0x5000, code.data(), code.size(), decodes, Interpreter::Table().data());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->count, 5);  // add, nop, je (its handler leaves the block when taken), nop, jmp
  EXPECT_EQ(b->bytes, 9);
  EXPECT_EQ(blocks.Lookup(0x5000, decodes), b);
  // An instruction cut by the page's end is not part of a block.
  const std::vector<uint8_t> cut = {0x90, 0x48, 0x01};
  b = blocks.Build(0x6ffd, cut.data(), cut.size(), decodes, Interpreter::Table().data());
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->count, 1);
  EXPECT_EQ(blocks.Build(0x6ffe, cut.data() + 1, 2, decodes, Interpreter::Table().data()), nullptr);
}

TEST(BlockCacheTest, StoresToThePageAndClearsMakeBlocksStale) {
  BlockCache blocks;
  DecodeCache decodes;
  const std::vector<uint8_t> code = {0x90, 0xc3};
  ASSERT_NE(blocks.Build(0x5000, code.data(), code.size(), decodes, Interpreter::Table().data()),
            nullptr);
  decodes.InvalidateWrite(0x5f00, 8);  // same page, elsewhere
  EXPECT_EQ(blocks.Lookup(0x5000, decodes), nullptr);
  ASSERT_NE(blocks.Build(0x5000, code.data(), code.size(), decodes, Interpreter::Table().data()),
            nullptr);
  decodes.InvalidateWrite(0x6000, 8);  // another page: still good
  EXPECT_NE(blocks.Lookup(0x5000, decodes), nullptr);
  decodes.Clear();
  EXPECT_EQ(blocks.Lookup(0x5000, decodes), nullptr);
}

TEST(BlockCacheTest, AFullArenaEmptiesTheCacheAndKeepsWorking) {
  BlockCache blocks;
  DecodeCache decodes;
  const std::vector<uint8_t> nops(BlockCache::kMaxBlockInsns, 0x90);
  const size_t builds = BlockCache::kArenaInsns / BlockCache::kMaxBlockInsns + 1;
  for (size_t i = 0; i < builds; ++i) {
    const Block* b =
        blocks.Build(i * 0x1000, nops.data(), nops.size(), decodes, Interpreter::Table().data());
    ASSERT_NE(b, nullptr);
    ASSERT_EQ(b->count, BlockCache::kMaxBlockInsns);
  }
  EXPECT_EQ(blocks.Lookup(0, decodes), nullptr) << "the first block went with the arena";
  const Block* last = blocks.Lookup((builds - 1) * 0x1000, decodes);
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(blocks.insns(*last)[0].insn.opcode(), 0x90);
}

struct FixedEnv : CpuEnvironment {
  void Cpuid(uint32_t leaf, uint32_t, uint32_t out[4]) override {
    out[0] = leaf, out[1] = 2, out[2] = 3, out[3] = 4;
  }
  uint64_t ReadTsc() override { return 1; }
};

class BlockRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RamRange range{0, 1 << 20};
    auto m = GuestMemory::Create({&range, 1}, {});
    ASSERT_TRUE(m);
    memory_.emplace(std::move(*m));
    // 4-level identity map of the first GiB (one 1 GiB page), CPL0 64-bit.
    ASSERT_TRUE(memory_->WriteObj<uint64_t>(0x1000, 0x2000 | 7));
    ASSERT_TRUE(memory_->WriteObj<uint64_t>(0x2000, 0x0 | 0x87));
    state_.cr0 = kCr0Pe | kCr0Pg | kCr0Wp | kCr0Am;  // AM on, as Linux has it
    state_.cr3 = 0x1000;
    state_.cr4 = kCr4Pae;
    state_.efer = kEferLme | kEferLma | kEferNxe;
    state_.seg[kCs].l = true;
    state_.rip = kCode;
    state_.gpr[kRsp] = kStack;
  }

  std::optional<GuestMemory> memory_;
  CpuState state_;
  FixedEnv env_;
};

TEST_F(BlockRunTest, StoreIntoTheRunningBlockIsSeenByItsNextInstruction) {
  // mov byte [rip+1], 7  patches the immediate of the next instruction, in the same block:
  //   c6 05 01 00 00 00 07    mov byte [rip+1], 7
  //   b8 01 00 00 00          mov eax, 1   (becomes mov eax, 7)
  //   f4                      hlt
  const std::vector<uint8_t> code = {0xc6, 0x05, 0x01, 0, 0, 0, 0x07, 0xb8, 1, 0, 0, 0, 0xf4};
  ASSERT_TRUE(memory_->Write(kCode, code));
  Interpreter cpu(state_, *memory_, env_);
  uint64_t retired = 0;
  // Decode the block once with the old bytes, then run it from the start again.
  ASSERT_EQ(cpu.Run(10, &retired), StepStatus::kHalt);
  EXPECT_EQ(state_.gpr[kRax], 7u);
  ASSERT_TRUE(memory_->Write(kCode, code));  // restore the 1 (outside the interpreter)
  cpu.NotifyExternalWrite(kCode, code.size());
  state_.rip = kCode;
  ASSERT_EQ(cpu.Run(10, &retired), StepStatus::kHalt);
  EXPECT_EQ(state_.gpr[kRax], 7u);
}

// A loop of calls, stack, memory, ALU, shifts, multiplies and every kind of branch, run to
// its HLT by blocks and by single steps: the same registers, flags and memory.
TEST_F(BlockRunTest, BlocksAndSingleStepsReachTheSameState) {
  const std::vector<uint8_t> code = {
      0xb9, 0x40, 0, 0, 0,                 // mov ecx, 64
      0x48, 0xbe, 0, 0, 2, 0, 0, 0, 0, 0,  // mov rsi, kData
      // loop:
      0x48, 0x89, 0xc8,        // mov rax, rcx
      0x48, 0x0f, 0xaf, 0xc1,  // imul rax, rcx
      0x48, 0xc1, 0xe0, 0x03,  // shl rax, 3
      0x48, 0x31, 0xc3,        // xor rbx, rax
      0x48, 0x89, 0x04, 0xce,  // mov [rsi+rcx*8], rax
      0x48, 0x03, 0x1e,        // add rbx, [rsi]
      0x83, 0xe3, 0x7f,        // and ebx, 127
      0x85, 0xdb,              // test ebx, ebx
      0x74, 0x05,              // je +5
      0xe8, 0x0b, 0, 0, 0,     // call sub
      0x48, 0x39, 0xd9,        // cmp rcx, rbx
      0x7c, 0x01,              // jl +1
      0x90,                    // nop
      0xff, 0xc9,              // dec ecx
      0x75, 0xd5,              // jne loop
      0xf4,                    // hlt
      // sub:
      0x52,              // push rdx
      0x48, 0x01, 0xda,  // add rdx, rbx
      0x48, 0x89, 0xd7,  // mov rdi, rdx
      0x5a,              // pop rdx
      0x48, 0x01, 0xfa,  // add rdx, rdi
      0xc3,              // ret
  };
  ASSERT_TRUE(memory_->Write(kCode, code));
  const CpuState start = state_;
  Interpreter stepped(state_, *memory_, env_);
  stepped.set_blocks_enabled(false);
  uint64_t steps = 0;
  ASSERT_EQ(stepped.Run(100000, &steps), StepStatus::kHalt);
  const CpuState by_steps = state_;
  std::vector<uint8_t> memory_by_steps(0x400);
  ASSERT_TRUE(memory_->Read(kData, memory_by_steps));

  std::vector<uint8_t> zeros(0x400);
  ASSERT_TRUE(memory_->Write(kData, zeros));
  state_ = start;
  Interpreter blocks(state_, *memory_, env_);
  uint64_t block_steps = 0;
  ASSERT_EQ(blocks.Run(100000, &block_steps), StepStatus::kHalt);
  EXPECT_GT(steps, 500u);
  EXPECT_EQ(block_steps, steps);
  EXPECT_EQ(state_.gpr, by_steps.gpr);
  EXPECT_EQ(state_.rip, by_steps.rip);
  EXPECT_EQ(state_.flags.Get(), by_steps.flags.Get());
  std::vector<uint8_t> memory_by_blocks(0x400);
  ASSERT_TRUE(memory_->Read(kData, memory_by_blocks));
  EXPECT_EQ(memory_by_blocks, memory_by_steps);
}

TEST_F(BlockRunTest, ABudgetEndsInsideABlockAndTheNextRunContinues) {
  const std::vector<uint8_t> code = {0xff, 0xc0, 0xff, 0xc0, 0xff, 0xc0, 0xff, 0xc0, 0xf4};
  ASSERT_TRUE(memory_->Write(kCode, code));
  Interpreter cpu(state_, *memory_, env_);
  uint64_t retired = 0;
  ASSERT_EQ(cpu.Run(3, &retired), StepStatus::kOk);
  EXPECT_EQ(retired, 3u);
  EXPECT_EQ(state_.gpr[kRax], 3u);
  EXPECT_EQ(state_.rip, kCode + 6);
  ASSERT_EQ(cpu.Run(10, &retired), StepStatus::kHalt);
  EXPECT_EQ(state_.gpr[kRax], 4u);
}

TEST_F(BlockRunTest, AFaultInsideABlockLeavesRipAtTheFaultingInstruction) {
  // inc eax; mov rax, [rbx] with rbx past the 1 GiB map: #PF at the load, inc retired.
  const std::vector<uint8_t> code = {0xff, 0xc0, 0x48, 0x8b, 0x03, 0xf4};
  ASSERT_TRUE(memory_->Write(kCode, code));
  state_.gpr[kRbx] = uint64_t{1} << 31;
  Interpreter cpu(state_, *memory_, env_);
  uint64_t retired = 0;
  ASSERT_EQ(cpu.Run(10, &retired), StepStatus::kException);
  EXPECT_EQ(cpu.exception().vector, kPageFault);
  EXPECT_EQ(retired, 1u);
  EXPECT_EQ(state_.gpr[kRax], 1u);
  EXPECT_EQ(state_.rip, kCode + 2);
  EXPECT_EQ(state_.cr2, uint64_t{1} << 31);
}

// Every specialized form against the generic handler, from random registers and from flags
// recorded by each kind of operation (the conditions read them).
TEST_F(BlockRunTest, SpecializedHandlersMatchTheGenericTable) {
  std::vector<std::vector<uint8_t>> forms;
  for (uint8_t rex : {0x40, 0x48, 0x4d}) {
    for (int op = 0; op < 8; ++op) {
      forms.push_back({rex, uint8_t(op << 3 | 1), 0xd8});  // op r/m, reg
      forms.push_back({rex, uint8_t(op << 3 | 3), 0xca});  // op reg, r/m
      forms.push_back({rex, 0x83, uint8_t(0xc0 | op << 3 | 2), 0x85});
      forms.push_back({rex, 0x81, uint8_t(0xc0 | op << 3 | 1), 0x78, 0x56, 0x34, 0x92});
    }
    forms.push_back({rex, 0x85, 0xd9});              // test
    forms.push_back({rex, 0x89, 0xc3});              // mov r/m, reg
    forms.push_back({rex, 0x8b, 0xd1});              // mov reg, r/m
    forms.push_back({rex, 0x8b, 0x46, 0x08});        // mov reg, [rsi+8]
    forms.push_back({rex, 0x89, 0x5c, 0x8e, 0xf8});  // mov [rsi+rcx*4-8], reg
  }
  for (uint8_t rex : {0x40, 0x48, 0x49}) {
    for (int op = 0; op < 8; ++op) {
      for (uint8_t count : {0, 1, 7, 31, 32, 63}) {
        forms.push_back({rex, 0xc1, uint8_t(0xc0 | op << 3 | 3), count});
      }
      forms.push_back({rex, 0xd1, uint8_t(0xc0 | op << 3 | 2)});
      forms.push_back({rex, 0xd3, uint8_t(0xc0 | op << 3 | 1)});
    }
    for (int op = 0; op < 8; ++op) {
      forms.push_back({rex, uint8_t(op << 3 | 1), 0x46, 0x08});  // op [rsi+8], reg
      forms.push_back({rex, uint8_t(op << 3 | 3), 0x46, 0x08});  // op reg, [rsi+8]
      forms.push_back({rex, 0x83, uint8_t(0x46 | op << 3), 0x08, 0x85});
      forms.push_back({rex, 0x81, uint8_t(0x46 | op << 3), 0x08, 0x78, 0x56, 0x34, 0x92});
    }
    for (int cc = 0; cc < 16; ++cc) {
      forms.push_back({rex, 0x0f, uint8_t(0x40 + cc), 0xc3});  // cmovcc
      forms.push_back({rex, 0x0f, uint8_t(0x90 + cc), 0xc4});  // setcc spl / r12b
      forms.push_back({0x0f, uint8_t(0x90 + cc), 0xc4});       // setcc ah
    }
    forms.push_back({rex, 0x0f, 0xaf, 0xc3});              // imul
    forms.push_back({rex, 0x8d, 0x44, 0x8e, 0x10});        // lea
    forms.push_back({rex, 0x8d, 0x05, 0x10, 0, 0, 0x80});  // lea reg, [rip-...]
    forms.push_back({rex, 0x0f, 0xb6, 0xc4});              // movzx reg, spl / r12b
    forms.push_back({rex, 0x0f, 0xb6, 0x46, 0x03});        // movzx reg, byte [rsi+3]
    forms.push_back({rex, 0x63, 0xc3});                    // movsxd
    forms.push_back({uint8_t(rex & 0x41), 0x53});          // push rbx / r11
    forms.push_back({uint8_t(rex & 0x41), 0x5d});          // pop rbp / r13
  }
  forms.push_back({0x0f, 0xb6, 0xc4});              // movzx eax, ah
  forms.push_back({0xf0, 0x01, 0x06});              // lock add [rsi], eax
  forms.push_back({0xf0, 0x48, 0x0f, 0xb1, 0x1e});  // lock cmpxchg [rsi], rbx
  forms.push_back({0x48, 0x87, 0x06});              // xchg [rsi], rax (locked)
  forms.push_back({0x54});                          // push rsp
  forms.push_back({0x5c});                          // pop rsp
  for (int cc = 0; cc < 16; ++cc) {
    forms.push_back({uint8_t(0x70 + cc), 0x10});
    forms.push_back({0x0f, uint8_t(0x80 + cc), 0x00, 0x01, 0, 0});
  }
  std::mt19937_64 rng(7);
  const uint64_t edges[] = {
      0,           1, 0x7f, 0x80, 0xffffffff, 0x80000000, 0x7fffffffffffffff, 0x8000000000000000,
      ~uint64_t{0}};
  auto value = [&] { return rng() % 3 == 0 ? edges[rng() % 9] : rng(); };
  const FlagOp kinds[] = {FlagOp::kSub, FlagOp::kLogic, FlagOp::kAdd, FlagOp::kInc, FlagOp::kNone};
  int specialized = 0;
  for (const auto& form : forms) {
    const DecodedInsn insn = Decode(form);
    const Handler fast = FastHandler(insn, CpuMode::kLong64);
    if (fast == nullptr) continue;
    ++specialized;
    std::string hex;
    for (uint8_t byte : form) hex += fmt::format("{:02x}", byte);
    ASSERT_TRUE(memory_->Write(kCode, form));
    // One interpreter of each kind per form (their caches hold this form's decode only).
    CpuState generic_state, fast_state;
    Interpreter generic(generic_state, *memory_, env_);
    Interpreter cpu(fast_state, *memory_, env_);
    generic.NotifyExternalWrite(kCode, form.size());
    cpu.NotifyExternalWrite(kCode, form.size());
    for (int i = 0; i < 40; ++i) {
      CpuState start = state_;
      for (auto& r : start.gpr) r = value();
      start.gpr[kRsi] = start.gpr[14] = kData + 0x100;  // the base with and without REX.B
      start.gpr[kRcx] = rng() % 80;
      start.gpr[kRsp] = kData + 0x180;
      const int size = static_cast<int>(rng() % 4);
      const uint64_t d = value(), s = value(), mask = SizeMask(size);
      const FlagOp kind = kinds[rng() % 5];
      if (kind == FlagOp::kNone) {
        start.flags.Set(rng() & kArithFlags);
      } else {
        const uint64_t r = kind == FlagOp::kSub   ? d - s
                           : kind == FlagOp::kAdd ? d + s
                           : kind == FlagOp::kInc ? d + 1
                                                  : d & s;
        start.flags.Record(kind, size, d & mask, s & mask, r & mask, rng() & 1);
      }
      std::vector<uint8_t> data(0x200);
      for (auto& b : data) b = static_cast<uint8_t>(rng());
      ASSERT_TRUE(memory_->Write(kData, data));
      SCOPED_TRACE(testing::Message() << "form " << hex << " case " << i);
      generic_state = start;
      generic_state.rip = kCode;
      ASSERT_EQ(generic.Step(), StepStatus::kOk);
      std::vector<uint8_t> generic_data(0x200);
      ASSERT_TRUE(memory_->Read(kData, generic_data));

      ASSERT_TRUE(memory_->Write(kData, data));
      fast_state = start;
      fast_state.rip = kCode;
      const uint64_t next = kCode + insn.length();
      // The handler itself, as a block runs it (RunBlocks sets the next RIP first).
      ASSERT_EQ(cpu.Run(1, nullptr), StepStatus::kOk);
      std::vector<uint8_t> fast_data(0x200);
      ASSERT_TRUE(memory_->Read(kData, fast_data));
      EXPECT_EQ(fast_state.gpr, generic_state.gpr);
      EXPECT_EQ(fast_state.rip, generic_state.rip);
      EXPECT_EQ(fast_state.flags.Get(), generic_state.flags.Get());
      EXPECT_EQ(fast_data, generic_data);
      EXPECT_TRUE(fast_state.rip == next || insn.opcode() >= 0x70) << "only Jcc branches";
    }
  }
  EXPECT_GE(specialized, 500);
}

}  // namespace
}  // namespace vireo::emu
