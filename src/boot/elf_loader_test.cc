#include "boot/elf_loader.h"

#include <gtest/gtest.h>

#include "base/bytes.h"
#include "boot/test_images.h"

namespace vireo::boot {
namespace {

using testing::ElfBuilder;
using testing::MakeMemory;
using testing::Pattern;

std::string ErrorOf(const Result<elf::Extent>& result) {
  return result ? "" : result.error().message;
}

std::string ParseError(const std::vector<uint8_t>& file) {
  auto parsed = elf::Parse(file);
  return parsed ? "" : parsed.error().message;
}

TEST(ElfLoader, LoadsSegmentsAndZeroFillsBss) {
  GuestMemory memory = MakeMemory();
  ElfBuilder b;
  b.entry = 0x200000;
  b.Load(0x200000, Pattern(0x1234, 1), 0x3000).Load(0x400000, Pattern(0x100, 2));
  std::vector<uint8_t> file = b.Build();
  auto span = memory.Span(0x200000, 0x3000);
  std::fill(span->begin(), span->end(), 0xcc);  // the loader must zero the bss itself
  auto elf = elf::Parse(file);
  ASSERT_TRUE(elf) << elf.error().message;
  auto extent = elf::LoadSegments(memory, file, *elf);
  ASSERT_TRUE(extent) << extent.error().message;
  EXPECT_EQ(extent->start, 0x200000u);
  EXPECT_EQ(extent->end, 0x400100u);
  std::vector<uint8_t> got(0x1234);
  ASSERT_TRUE(memory.Read(0x200000, got));
  EXPECT_EQ(got, Pattern(0x1234, 1));
  for (uint64_t a = 0x201234; a < 0x203000; a += 0x101) EXPECT_EQ(memory.ReadObj<uint8_t>(a), 0);
  EXPECT_EQ(memory.ReadObj<uint8_t>(0x202fff), 0);
}

TEST(ElfLoader, ParsesElf32) {
  ElfBuilder b;
  b.is64 = false;
  b.entry = 0x100010;
  b.Load(0x100000, Pattern(0x40, 3));
  auto elf = elf::Parse(b.Build());
  ASSERT_TRUE(elf) << elf.error().message;
  EXPECT_FALSE(elf->is64);
  EXPECT_EQ(elf->entry, 0x100010u);
  ASSERT_EQ(elf->segments.size(), 1u);
  EXPECT_EQ(elf->segments[0].paddr, 0x100000u);
}

TEST(ElfLoader, RejectsTruncatedHeaders) {
  std::vector<uint8_t> file = ElfBuilder{}.Load(0x100000, Pattern(16, 0)).Build();
  EXPECT_NE(ParseError({file.begin(), file.begin() + 40}).find("truncated"), std::string::npos);
  EXPECT_NE(ParseError({file.begin(), file.begin() + 60}).find("truncated"), std::string::npos);
  // Program headers cut off.
  EXPECT_NE(ParseError({file.begin(), file.begin() + 100}).find("program headers"),
            std::string::npos);
}

TEST(ElfLoader, RejectsFileRangePastEnd) {
  ElfBuilder b;
  b.Load(0x100000, Pattern(0x100, 0));
  std::vector<uint8_t> file = b.Build();
  StoreLe<uint64_t>(file, b.PhdrOffset(0) + 32, 0x101);  // p_filesz one past the end
  StoreLe<uint64_t>(file, b.PhdrOffset(0) + 40, 0x101);
  EXPECT_NE(ParseError(file).find("run past the end"), std::string::npos) << ParseError(file);
  // An offset that would wrap around when added to the size.
  StoreLe<uint64_t>(file, b.PhdrOffset(0) + 8, UINT64_MAX - 8);
  EXPECT_NE(ParseError(file).find("run past the end"), std::string::npos);
}

TEST(ElfLoader, RejectsOverflowingAndInconsistentSizes) {
  ElfBuilder b;
  b.Load(0x100000, Pattern(0x100, 0));
  std::vector<uint8_t> file = b.Build();
  StoreLe<uint64_t>(file, b.PhdrOffset(0) + 24, 0xfffffffffffff000);  // p_paddr
  StoreLe<uint64_t>(file, b.PhdrOffset(0) + 40, 0x2000);              // p_memsz
  EXPECT_NE(ParseError(file).find("overflows"), std::string::npos) << ParseError(file);
  StoreLe<uint64_t>(file, b.PhdrOffset(0) + 24, 0x100000);
  StoreLe<uint64_t>(file, b.PhdrOffset(0) + 40, 0x80);  // memsz < filesz
  EXPECT_NE(ParseError(file).find("larger than p_memsz"), std::string::npos);
}

TEST(ElfLoader, RejectsSegmentsOutsideUsableRam) {
  GuestMemory memory = MakeMemory();
  struct Case {
    uint64_t paddr, memsz;
    const char* want;
  } cases[] = {
      {0x8000000, 0x1000, "does not fit in guest RAM"},     // 128 MiB: past 64 MiB of RAM
      {0x3fff000, 0x2000, "does not fit in guest RAM"},     // straddles the end of RAM
      {0x100000, 0x7fffffff, "does not fit in guest RAM"},  // huge bss
      {0x7000, 0x1000, "below 1 MiB"},                      // over the zero page
      {0xfffff000, 0x2000, "above 4 GiB"},
  };
  for (const Case& c : cases) {
    ElfBuilder b;
    b.Load(c.paddr, Pattern(0x10, 0), c.memsz);
    std::vector<uint8_t> file = b.Build();
    auto elf = elf::Parse(file);
    ASSERT_TRUE(elf) << elf.error().message;
    std::string error = ErrorOf(elf::LoadSegments(memory, file, *elf));
    EXPECT_NE(error.find(c.want), std::string::npos) << std::hex << c.paddr << ": " << error;
  }
}

TEST(ElfLoader, RejectsWrongKindsOfElf) {
  std::vector<uint8_t> file = ElfBuilder{}.Load(0x100000, Pattern(16, 0)).Build();
  auto with = [&](size_t offset, uint8_t value) {
    std::vector<uint8_t> copy = file;
    copy[offset] = value;
    return ParseError(copy);
  };
  EXPECT_NE(with(4, 7).find("unknown class"), std::string::npos);
  EXPECT_NE(with(5, 2).find("big-endian"), std::string::npos);
  EXPECT_NE(with(16, 3).find("ET_EXEC"), std::string::npos);
  EXPECT_NE(with(18, 40).find("machine 40"), std::string::npos);  // ARM
  EXPECT_NE(with(54, 16).find("program headers of 16 bytes"), std::string::npos);
  std::vector<uint8_t> notes_only = ElfBuilder{}.Note("Xen", 18, {0, 0, 0x10, 0}).Build();
  EXPECT_NE(ParseError(notes_only).find("no PT_LOAD"), std::string::npos);
  EXPECT_NE(ParseError(ElfBuilder{}.Build()).find("no program headers"), std::string::npos);
}

}  // namespace
}  // namespace vireo::boot
