// Test fixture for the legacy modes (real, 32-bit protected, compatibility): a small guest
// RAM, a GDT with the usual flat descriptors, and helpers to place code and read memory.
#pragma once

#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "accel/emu/interpreter.h"
#include "accel/emu/segmentation.h"

namespace vireo::emu::testing {

inline constexpr uint64_t kGdt = 0x1000, kIdt = 0x2000, kTss = 0x3000;

// GDT selectors of ModesTest::SetUp.
inline constexpr uint16_t kCode32 = 0x08, kCode64 = 0x10, kData = 0x18, kUserData = 0x20,
                          kUserCode32 = 0x28, kTssSel = 0x30;
inline constexpr uint64_t kDescCode32 = 0x00cf9a000000ffffull;  // flat, DPL0, execute/read
inline constexpr uint64_t kDescCode64 = 0x00af9a000000ffffull;  // L=1, DPL0
inline constexpr uint64_t kDescData = 0x00cf92000000ffffull;    // flat, DPL0, read/write
inline constexpr uint64_t kDescUserData = 0x00cff2000000ffffull;
inline constexpr uint64_t kDescUserCode32 = 0x00cffa000000ffffull;

// A descriptor with `base`, byte-granular `limit` (< 1 MiB) and access byte `access`
// (P DPL S type) and flags nibble `flags` (G D/B L AVL).
constexpr uint64_t Descriptor(uint32_t base, uint32_t limit, uint8_t access, uint8_t flags) {
  return (limit & 0xffff) | uint64_t{base & 0xffffff} << 16 | uint64_t{access} << 40 |
         uint64_t{(limit >> 16) & 0xf} << 48 | (uint64_t{flags} & 0xf) << 52 |
         uint64_t{base >> 24} << 56;
}

struct NullEnv : CpuEnvironment {
  void Cpuid(uint32_t, uint32_t, uint32_t out[4]) override {
    out[0] = out[1] = out[2] = out[3] = 0;
  }
  uint64_t ReadTsc() override { return 0; }
};

class ModesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RamRange range{0, 8 << 20};
    auto m = GuestMemory::Create({&range, 1}, {});
    ASSERT_TRUE(m);
    memory_.emplace(std::move(*m));
    W64(kGdt + kCode32, kDescCode32);
    W64(kGdt + kCode64, kDescCode64);
    W64(kGdt + kData, kDescData);
    W64(kGdt + kUserData, kDescUserData);
    W64(kGdt + kUserCode32, kDescUserCode32);
    s_.gdtr = {kGdt, 0xff};
  }

  // Flat 32-bit protected mode at CPL0, paging off, as PVH starts a kernel.
  void Flat32() {
    s_.cr0 = kCr0Pe | (1u << 4);
    s_.seg[kCs] = SegmentFrom(s_, kCode32, kDescCode32 | (uint64_t{1} << 40));
    for (Seg seg : {kEs, kSs, kDs, kFs, kGs})
      s_.seg[seg] = SegmentFrom(s_, kData, kDescData | (uint64_t{1} << 40));
  }
  // Real mode with CS = `cs`, the other segments 0.
  void Real(uint16_t cs) {
    s_.cr0 = 0x60000010;
    s_.seg[kCs] = RealModeSegment(cs, true);
    for (Seg seg : {kEs, kSs, kDs, kFs, kGs}) s_.seg[seg] = RealModeSegment(0, false);
  }

  Interpreter& Cpu() {
    if (!cpu_) cpu_.emplace(s_, *memory_, env_);
    return *cpu_;
  }
  StepStatus Step() { return Cpu().Step(); }
  // Runs `n` steps, stopping at the first that is not kOk.
  StepStatus Steps(int n) {
    StepStatus st = StepStatus::kOk;
    for (int i = 0; i < n && st == StepStatus::kOk; ++i) st = Step();
    return st;
  }
  // The exception a step returned, as (vector, error code or -1).
  std::pair<int, int64_t> Fault() const {
    const Exception& e = cpu_->exception();
    return {e.vector, e.has_error_code ? int64_t{e.error_code} : -1};
  }

  void Code(uint64_t at, std::vector<uint8_t> bytes) {
    ASSERT_TRUE(memory_->Write(at, bytes));
    if (cpu_) cpu_->NotifyExternalWrite(at, bytes.size());
  }
  void W64(uint64_t a, uint64_t v) { ASSERT_TRUE(memory_->WriteObj<uint64_t>(a, v)); }
  void W32(uint64_t a, uint32_t v) { ASSERT_TRUE(memory_->WriteObj<uint32_t>(a, v)); }
  void W16(uint64_t a, uint16_t v) { ASSERT_TRUE(memory_->WriteObj<uint16_t>(a, v)); }
  uint64_t R64(uint64_t a) { return *memory_->ReadObj<uint64_t>(a); }
  uint32_t R32(uint64_t a) { return *memory_->ReadObj<uint32_t>(a); }
  uint16_t R16(uint64_t a) { return *memory_->ReadObj<uint16_t>(a); }

  std::optional<GuestMemory> memory_;
  CpuState s_;
  NullEnv env_;
  std::optional<Interpreter> cpu_;
};

}  // namespace vireo::emu::testing
