#include "arch/x86/boot_cpu.h"

#include <gtest/gtest.h>

#include "arch/x86/layout.h"

namespace vireo::x86 {
namespace {

GuestMemory Ram() { return std::move(*GuestMemory::Create(RamLayout(64 << 20), {})); }

TEST(WriteBootTables, IdentityMapsFourGibInTwoMibPages) {
  GuestMemory memory = Ram();
  ASSERT_TRUE(WriteBootTables(memory, CpuMode::kLong64));
  EXPECT_EQ(*memory.ReadObj<uint64_t>(kPml4) & ~0xfffull, kPdpt);
  for (uint64_t gib = 0; gib < 4; ++gib) {
    uint64_t pd = *memory.ReadObj<uint64_t>(kPdpt + gib * 8) & ~0xfffull;
    EXPECT_EQ(pd, kPageDirs + gib * 0x1000);
    // The last 2 MiB page of each GiB maps to itself.
    uint64_t pde = *memory.ReadObj<uint64_t>(pd + 511 * 8);
    EXPECT_EQ(pde & ~0x1fffffull, (gib << 30) + (511ull << 21));
    EXPECT_EQ(pde & 0x83, 0x83u) << "present, writable, 2 MiB page";
  }
}

TEST(WriteBootTables, GdtHasLinuxBootSelectors) {
  GuestMemory memory = Ram();
  ASSERT_TRUE(WriteBootTables(memory, CpuMode::kLong64));
  uint64_t code = *memory.ReadObj<uint64_t>(kBootGdt + 0x10);
  uint64_t data = *memory.ReadObj<uint64_t>(kBootGdt + 0x18);
  EXPECT_TRUE((code >> 53) & 1) << "__BOOT_CS is a 64-bit code segment";
  EXPECT_EQ((data >> 40) & 0xf, 3u) << "__BOOT_DS is read/write data";
}

TEST(BootSpecialRegisters, LongModeTurnsOnPagingAndLma) {
  auto s = BootSpecialRegisters({}, CpuMode::kLong64);
  EXPECT_EQ(s.cr3, kPml4);
  EXPECT_TRUE(s.cr0 & (1ull << 31));
  EXPECT_TRUE(s.cr4 & (1ull << 5));
  EXPECT_EQ(s.efer & 0x500, 0x500u);
  EXPECT_TRUE(s.cs.l);
  EXPECT_EQ(s.cs.selector, 0x10);
  EXPECT_EQ(s.ds.selector, 0x18);
}

TEST(BootSpecialRegisters, ProtectedModeIsFlatWithPagingOff) {
  auto s = BootSpecialRegisters({}, CpuMode::kProtected32);
  EXPECT_EQ(s.cr0 & ((1ull << 31) | 1), 1u);
  EXPECT_EQ(s.efer, 0u);
  EXPECT_FALSE(s.cs.l);
  EXPECT_TRUE(s.cs.db);
  EXPECT_EQ(s.cs.limit, 0xffffffffu);
  EXPECT_EQ(s.ss.limit, 0xffffffffu);
}

}  // namespace
}  // namespace vireo::x86
