// LOCKed read-modify-writes are atomic across threads: two interpreters on two host threads
// share guest memory and count with LOCK ADD, LOCK XADD and a LOCK CMPXCHG16B retry loop; no
// increment may be lost (a plain read-then-write loses many when the threads overlap).
#include <gtest/gtest.h>

#include <optional>
#include <thread>
#include <vector>

#include "accel/emu/interpreter.h"

namespace vireo::emu {
namespace {

constexpr uint64_t kPml4 = 0x1000, kCode = 0x10000, kCounters = 0x20000;
constexpr uint32_t kIterations = 200000;

struct Env : CpuEnvironment {
  void Cpuid(uint32_t, uint32_t, uint32_t out[4]) override {
    out[0] = out[1] = out[2] = out[3] = 0;
  }
  uint64_t ReadTsc() override { return 0; }
};

// One increment of each counter at [rdi], [rdi+8] and [rdi+16] (128-bit).
std::vector<uint8_t> CountingBody() {
  std::vector<uint8_t> c;
  c.insert(c.end(), {0xf0, 0x48, 0x83, 0x07, 0x01});        // lock add qword [rdi], 1
  c.insert(c.end(), {0xbb, 0x01, 0x00, 0x00, 0x00});        // mov ebx, 1
  c.insert(c.end(), {0xf0, 0x48, 0x0f, 0xc1, 0x5f, 0x08});  // lock xadd [rdi+8], rbx
  c.insert(c.end(), {0x48, 0x8b, 0x47, 0x10});              // mov rax, [rdi+16]
  c.insert(c.end(), {0x48, 0x8b, 0x57, 0x18});              // mov rdx, [rdi+24]
  const size_t retry = c.size();
  c.insert(c.end(), {0x48, 0x8d, 0x58, 0x01});              // lea rbx, [rax+1]
  c.insert(c.end(), {0x48, 0x89, 0xd1});                    // mov rcx, rdx
  c.insert(c.end(), {0xf0, 0x48, 0x0f, 0xc7, 0x4f, 0x10});  // lock cmpxchg16b [rdi+16]
  c.push_back(0x75);                                        // jnz retry
  c.push_back(static_cast<uint8_t>(retry - (c.size() + 1)));
  return c;
}

TEST(LockTest, LockedReadModifyWritesLoseNoUpdateAcrossThreads) {
  RamRange range{0, 1 << 20};
  auto memory = GuestMemory::Create({&range, 1}, {});
  ASSERT_TRUE(memory);
  ASSERT_TRUE(memory->WriteObj<uint64_t>(kPml4, 0x2000 | 3));
  ASSERT_TRUE(memory->WriteObj<uint64_t>(0x2000, 0x83));  // 1 GiB identity page
  // The loop count lives in r8 (CMPXCHG16B needs rcx): mov r8d, N; body; dec r8d; jnz; hlt.
  std::vector<uint8_t> code = {0x41, 0xb8};
  for (int i = 0; i < 4; ++i) code.push_back(static_cast<uint8_t>(kIterations >> (i * 8)));
  const size_t loop = code.size();
  const std::vector<uint8_t> body = CountingBody();
  code.insert(code.end(), body.begin(), body.end());
  code.insert(code.end(), {0x41, 0xff, 0xc8});  // dec r8d
  code.push_back(0x75);                         // jnz loop
  code.push_back(static_cast<uint8_t>(loop - (code.size() + 1)));
  code.push_back(0xf4);  // hlt
  ASSERT_TRUE(memory->Write(kCode, code));

  auto run = [&](uint64_t* retired) {
    CpuState s;
    s.cr0 = kCr0Pe | kCr0Pg;
    s.cr3 = kPml4;
    s.cr4 = kCr4Pae;
    s.efer = kEferLme | kEferLma;
    s.seg[kCs] = Interpreter::CodeSegmentFrom(0x08, 0x00af9b000000ffffull);
    s.rip = kCode;
    s.gpr[kRdi] = kCounters;
    Env env;
    Interpreter cpu(s, *memory, env);
    StepStatus status;
    do {
      status = cpu.Run(1 << 20, retired);
    } while (status == StepStatus::kOk);
    EXPECT_EQ(status, StepStatus::kHalt);
  };
  uint64_t a = 0, b = 0;
  std::thread first(run, &a), second(run, &b);
  first.join();
  second.join();
  EXPECT_EQ(*memory->ReadObj<uint64_t>(kCounters), 2u * kIterations) << "LOCK ADD";
  EXPECT_EQ(*memory->ReadObj<uint64_t>(kCounters + 8), 2u * kIterations) << "LOCK XADD";
  EXPECT_EQ(*memory->ReadObj<uint64_t>(kCounters + 16), 2u * kIterations) << "LOCK CMPXCHG16B";
}

}  // namespace
}  // namespace vireo::emu
