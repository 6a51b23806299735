#include "arch/x86/cpuid.h"

#include <gtest/gtest.h>

#include <cstring>

namespace vireo::x86 {
namespace {

const accel::CpuidEntry* Find(const std::vector<accel::CpuidEntry>& t, uint32_t f, uint32_t i = 0) {
  for (const auto& e : t) {
    if (e.function == f && e.index == i) return &e;
  }
  return nullptr;
}

std::vector<accel::CpuidEntry> Supported() {
  return {{0x0, 0, 0, 0x1c, 0, 0, 0},
          {0x1, 0, 0, 0x00b00f21, 0x00ff0800, 0x7efa3203, 0x178bfbff},
          {0xb, 0, 1, 1, 2, 0x100, 9},
          {0x80000008, 0, 0, 0x3030, 0, 0x7007, 0}};
}

TEST(BuildCpuid, Leaf1CarriesApicIdCountAndHypervisorBit) {
  auto table = BuildCpuid(Supported(), {4}, 3);
  const auto* leaf1 = Find(table, 1);
  ASSERT_NE(leaf1, nullptr);
  EXPECT_EQ(leaf1->ebx >> 24, 3u);
  EXPECT_EQ((leaf1->ebx >> 16) & 0xff, 4u);
  EXPECT_EQ(leaf1->ebx & 0xffff, 0x0800u) << "CLFLUSH size and brand index are kept";
  EXPECT_NE(leaf1->ecx & (1u << 31), 0u);
  EXPECT_NE(leaf1->edx & (1u << 28), 0u);
}

TEST(BuildCpuid, SingleCpuClearsHtt) {
  auto table = BuildCpuid(Supported(), {1}, 0);
  EXPECT_EQ(Find(table, 1)->edx & (1u << 28), 0u);
}

TEST(BuildCpuid, TopologyLeafBMatchesCpuCount) {
  auto table = BuildCpuid(Supported(), {6}, 5);
  const auto* smt = Find(table, 0xb, 0);
  const auto* core = Find(table, 0xb, 1);
  ASSERT_TRUE(smt && core);
  EXPECT_EQ(smt->ebx, 1u);
  EXPECT_EQ(core->ebx, 6u);
  EXPECT_EQ(core->eax, 3u) << "6 CPUs need 3 bits of APIC ID";
  EXPECT_EQ(core->edx, 5u) << "x2APIC ID";
  int leaf_b_entries = 0;
  for (const auto& e : table) leaf_b_entries += e.function == 0xb;
  EXPECT_EQ(leaf_b_entries, 3) << "the host's leaf 0xB is replaced, not duplicated";
}

TEST(BuildCpuid, AmdCoreCountLeaf) {
  auto table = BuildCpuid(Supported(), {4}, 0);
  const auto* leaf = Find(table, 0x80000008);
  EXPECT_EQ(leaf->ecx & 0xff, 3u);
  EXPECT_EQ((leaf->ecx >> 12) & 0xf, 2u);
}

TEST(BuildCpuid, AddsKvmSignatureWhenMissing) {
  auto table = BuildCpuid(Supported(), {1}, 0);
  const auto* kvm = Find(table, 0x40000000);
  ASSERT_NE(kvm, nullptr);
  char sig[13] = {};
  std::memcpy(sig, &kvm->ebx, 4);
  std::memcpy(sig + 4, &kvm->ecx, 4);
  std::memcpy(sig + 8, &kvm->edx, 4);
  EXPECT_STREQ(sig, "KVMKVMKVM");
}

}  // namespace
}  // namespace vireo::x86
