#include "devices/legacy/fw_cfg.h"

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

namespace vireo {
namespace {

class FwCfgTest : public ::testing::Test {
 protected:
  FwCfgTest()
      : fw_cfg_(FwCfgConfig{
            .ram_size = 6ull << 30, .nb_cpus = 4, .max_cpus = 8, .cmdline = "console=ttyS0"}) {}

  void Select(uint16_t key) {
    const std::array<uint8_t, 2> bytes{static_cast<uint8_t>(key), static_cast<uint8_t>(key >> 8)};
    fw_cfg_.Write(0, bytes);
  }
  std::vector<uint8_t> ReadBytes(size_t count) {
    std::vector<uint8_t> out(count);
    for (auto& byte : out) fw_cfg_.Read(1, std::span<uint8_t>(&byte, 1));
    return out;
  }

  FwCfg fw_cfg_;
};

TEST_F(FwCfgTest, SignatureAndTraditionalId) {
  Select(FwCfg::kSignature);
  EXPECT_EQ(ReadBytes(4), (std::vector<uint8_t>{'Q', 'E', 'M', 'U'}));
  Select(FwCfg::kId);
  EXPECT_EQ(ReadBytes(4), (std::vector<uint8_t>{1, 0, 0, 0}));
}

TEST_F(FwCfgTest, CpuCountsAndRamSizeAreLittleEndian) {
  Select(FwCfg::kNbCpus);
  EXPECT_EQ(ReadBytes(2), (std::vector<uint8_t>{4, 0}));
  Select(FwCfg::kMaxCpus);
  EXPECT_EQ(ReadBytes(2), (std::vector<uint8_t>{8, 0}));
  Select(FwCfg::kRamSize);
  EXPECT_EQ(ReadBytes(8), (std::vector<uint8_t>{0, 0, 0, 0x80, 1, 0, 0, 0}));
}

TEST_F(FwCfgTest, CommandLineIncludesItsNul) {
  Select(FwCfg::kCmdlineSize);
  EXPECT_EQ(ReadBytes(4), (std::vector<uint8_t>{14, 0, 0, 0}));
  Select(FwCfg::kCmdlineData);
  const std::vector<uint8_t> data = ReadBytes(14);
  EXPECT_EQ(std::string(data.begin(), data.end()), std::string("console=ttyS0\0", 14));
}

TEST_F(FwCfgTest, ReadsPastTheEndAreZeroAndWideReadsAreSuccessiveBytes) {
  Select(FwCfg::kSignature);
  std::array<uint8_t, 2> two{};
  fw_cfg_.Read(1, two);
  EXPECT_EQ(two, (std::array<uint8_t, 2>{'Q', 'E'}));
  std::array<uint8_t, 4> four{};
  fw_cfg_.Read(1, four);
  EXPECT_EQ(four, (std::array<uint8_t, 4>{'M', 'U', 0, 0}));
  EXPECT_EQ(ReadBytes(3), (std::vector<uint8_t>{0, 0, 0}));
  Select(FwCfg::kSignature);  // reselecting rewinds
  EXPECT_EQ(ReadBytes(1), (std::vector<uint8_t>{'Q'}));
}

TEST_F(FwCfgTest, UnknownAndArchLocalKeysReadZeros) {
  Select(0x0123);
  EXPECT_EQ(ReadBytes(4), (std::vector<uint8_t>{0, 0, 0, 0}));
  Select(0x8003);  // x86 arch-local E820 table: not provided
  EXPECT_EQ(ReadBytes(2), (std::vector<uint8_t>{0, 0}));
  EXPECT_EQ(fw_cfg_.unknown_selects(), 2u);
  Select(0x4000);  // write-channel bit: same item
  EXPECT_EQ(ReadBytes(1), (std::vector<uint8_t>{'Q'}));
  const std::array<uint8_t, 1> junk{0xff};
  fw_cfg_.Write(1, junk);  // data writes are ignored
  EXPECT_EQ(ReadBytes(1), (std::vector<uint8_t>{'E'}));
}

TEST_F(FwCfgTest, FileDirectoryIsBigEndian) {
  ASSERT_TRUE(fw_cfg_.AddFile("etc/one", std::vector<uint8_t>(0x0102, 7)));
  ASSERT_TRUE(fw_cfg_.AddFile("opt/org.vireo/two", {1, 2, 3}));
  Select(FwCfg::kFileDir);
  const std::vector<uint8_t> dir = ReadBytes(4 + 2 * 64);
  EXPECT_EQ(std::vector<uint8_t>(dir.begin(), dir.begin() + 4), (std::vector<uint8_t>{0, 0, 0, 2}));
  // Entry 0: size 0x00000102, select 0x0020, reserved 0, "etc/one" NUL-padded.
  EXPECT_EQ(std::vector<uint8_t>(dir.begin() + 4, dir.begin() + 12),
            (std::vector<uint8_t>{0, 0, 1, 2, 0, 0x20, 0, 0}));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&dir[12])), "etc/one");
  EXPECT_EQ(dir[12 + 55], 0);
  // Entry 1: size 3, select 0x0021.
  EXPECT_EQ(std::vector<uint8_t>(dir.begin() + 68, dir.begin() + 76),
            (std::vector<uint8_t>{0, 0, 0, 3, 0, 0x21, 0, 0}));
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&dir[76])), "opt/org.vireo/two");
  EXPECT_EQ(ReadBytes(1), (std::vector<uint8_t>{0}));  // past the end
  Select(0x0021);
  EXPECT_EQ(ReadBytes(4), (std::vector<uint8_t>{1, 2, 3, 0}));
}

TEST_F(FwCfgTest, BadFileNamesAreRefused) {
  ASSERT_TRUE(fw_cfg_.AddFile("etc/e820", {}));
  auto duplicate = fw_cfg_.AddFile("etc/e820", {1});
  ASSERT_FALSE(duplicate);
  EXPECT_NE(duplicate.error().message.find("already present"), std::string::npos);
  EXPECT_FALSE(fw_cfg_.AddFile("", {}));
  EXPECT_FALSE(fw_cfg_.AddFile(std::string(56, 'x'), {}));
  EXPECT_TRUE(fw_cfg_.AddFile(std::string(55, 'x'), {}));
  EXPECT_FALSE(fw_cfg_.AddFile(std::string("a\0b", 3), {}));
  Select(FwCfg::kFileDir);
  EXPECT_EQ(ReadBytes(4), (std::vector<uint8_t>{0, 0, 0, 2}));
}

TEST(FwCfgE820, PackedLittleEndianRecords) {
  const std::array<FwCfgE820Entry, 2> entries{{{0, 0x9fc00, 1}, {0x100000000ull, 0x40000000, 2}}};
  const std::vector<uint8_t> bytes = BuildE820File(entries);
  ASSERT_EQ(bytes.size(), 40u);
  EXPECT_EQ(
      std::vector<uint8_t>(bytes.begin(), bytes.begin() + 20),
      (std::vector<uint8_t>{0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0xfc, 0x09, 0, 0, 0, 0, 0, 1, 0, 0, 0}));
  EXPECT_EQ(std::vector<uint8_t>(bytes.begin() + 20, bytes.end()),
            (std::vector<uint8_t>{0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 2, 0, 0, 0}));
}

TEST(FwCfgEmpty, EmptyCommandLineHasSizeZero) {
  FwCfg fw_cfg(FwCfgConfig{.ram_size = 1 << 20});
  const std::array<uint8_t, 2> key{0x14, 0};
  fw_cfg.Write(0, key);
  std::array<uint8_t, 4> size{0xff, 0xff, 0xff, 0xff};
  fw_cfg.Read(1, size);
  EXPECT_EQ(size, (std::array<uint8_t, 4>{0, 0, 0, 0}));
  EXPECT_EQ(fw_cfg.unknown_selects(), 0u);
}

}  // namespace
}  // namespace vireo
