#include "boot/multiboot.h"

#include <gtest/gtest.h>

#include "arch/x86/layout.h"
#include "base/bytes.h"
#include "boot/test_images.h"

namespace vireo::boot {
namespace {

using testing::ElfBuilder;
using testing::KludgeOptions;
using testing::MakeMachine;
using testing::MakeMemory;
using testing::MakeMultibootKludge;
using testing::Pattern;
using testing::PutMultibootHeader;

class MultibootLoader : public ::testing::Test {
 protected:
  Result<BootEntry> Load(std::vector<uint8_t> kernel, std::string cmdline = "",
                         std::optional<std::vector<uint8_t>> initrd = std::nullopt,
                         BootProtocol protocol = BootProtocol::kAuto) {
    BootImage image{std::move(kernel), std::move(initrd), std::move(cmdline)};
    return LoadKernel(memory_, image, protocol, machine_);
  }
  std::string Error(Result<BootEntry> result) { return result ? "" : result.error().message; }
  std::string StringAt(GuestAddress addr) {
    std::string text;
    for (int i = 0; i < 256; ++i) {
      uint8_t c = memory_.ReadObj<uint8_t>(addr + i).value_or(0);
      if (c == 0) break;
      text += static_cast<char>(c);
    }
    return text;
  }
  multiboot::Info Info() { return memory_.ReadObj<multiboot::Info>(x86::kBootInfo).value(); }

  GuestMemory memory_ = MakeMemory();
  MachineInfo machine_ = MakeMachine();
};

TEST_F(MultibootLoader, AoutKludgeLoadsAndWritesInfo) {
  std::vector<uint8_t> kernel = MakeMultibootKludge();
  auto bss = memory_.Span(0x103000, 0x2000);
  std::fill(bss->begin(), bss->end(), 0xee);
  auto entry = Load(kernel);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->protocol, BootProtocol::kMultiboot);
  EXPECT_EQ(entry->mode, EntryMode::kProtected32);
  EXPECT_EQ(entry->entry_point, 0x100080u);
  EXPECT_EQ(entry->rax, 0x2badb002u);
  EXPECT_EQ(entry->rbx, x86::kBootInfo);
  EXPECT_EQ(entry->description, "multiboot a.out kludge, 32-bit entry at 0x100080");

  std::vector<uint8_t> loaded(kernel.size());
  ASSERT_TRUE(memory_.Read(0x100000, loaded));
  EXPECT_EQ(loaded, kernel);
  EXPECT_TRUE(std::all_of(bss->begin(), bss->end(), [](uint8_t b) { return b == 0; }));

  multiboot::Info info = Info();
  EXPECT_EQ(info.flags, multiboot::kInfoMem | multiboot::kInfoCmdline | multiboot::kInfoMmap |
                            multiboot::kInfoBootLoaderName);
  EXPECT_EQ(info.mem_lower, 639u);  // RAM ends at the EBDA, 0x9fc00
  EXPECT_EQ(info.mem_upper, (testing::kTestMemory - x86::kHighMemory) >> 10);
  EXPECT_EQ(info.cmdline, x86::kCmdline);
  EXPECT_EQ(StringAt(info.cmdline), "");  // empty, but a valid string
  EXPECT_EQ(memory_.ReadObj<uint8_t>(x86::kCmdline), 0);
  EXPECT_EQ(StringAt(info.boot_loader_name), "vireo");
  EXPECT_EQ(info.mods_count, 0u);

  ASSERT_EQ(info.mmap_length, machine_.e820.size() * 24);
  for (size_t i = 0; i < machine_.e820.size(); ++i) {
    std::vector<uint8_t> raw(24);
    ASSERT_TRUE(memory_.Read(info.mmap_addr + i * 24, raw));
    EXPECT_EQ(LoadLe<uint32_t>(raw, 0), 20u);
    EXPECT_EQ(LoadLe<uint64_t>(raw, 4), machine_.e820[i].addr);
    EXPECT_EQ(LoadLe<uint64_t>(raw, 12), machine_.e820[i].size);
    EXPECT_EQ(LoadLe<uint32_t>(raw, 20), static_cast<uint32_t>(machine_.e820[i].type));
  }
}

TEST_F(MultibootLoader, InitrdIsModuleZeroNamedInitrd) {
  std::vector<uint8_t> initrd = Pattern(5000, 2);
  auto entry = Load(MakeMultibootKludge(), "quiet", initrd);
  ASSERT_TRUE(entry) << entry.error().message;
  multiboot::Info info = Info();
  EXPECT_TRUE(info.flags & multiboot::kInfoMods);
  ASSERT_EQ(info.mods_count, 1u);
  auto module = memory_.ReadObj<multiboot::Module>(info.mods_addr).value();
  EXPECT_EQ(module.mod_start % 4096, 0u);
  EXPECT_EQ(module.mod_end - module.mod_start, initrd.size());
  EXPECT_EQ(StringAt(module.string), "initrd");
  EXPECT_EQ(StringAt(info.cmdline), "quiet");
  std::vector<uint8_t> got(initrd.size());
  ASSERT_TRUE(memory_.Read(module.mod_start, got));
  EXPECT_EQ(got, initrd);
}

TEST_F(MultibootLoader, Elf32KernelLoadsByProgramHeaders) {
  ElfBuilder b;
  b.is64 = false;
  b.entry = 0x100010;
  b.Load(0x100000, Pattern(0x200, 6), 0x1000);
  std::vector<uint8_t> kernel = b.Build();
  PutMultibootHeader(kernel, b.DataOffset(0),
                     multiboot::kFlagPageAlign | multiboot::kFlagMemoryInfo);
  auto entry = Load(kernel);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->protocol, BootProtocol::kMultiboot);
  EXPECT_EQ(entry->entry_point, 0x100010u);
  EXPECT_EQ(entry->description, "multiboot ELF32, 32-bit entry at 0x100010");
  EXPECT_EQ(memory_.ReadObj<uint32_t>(0x100000), 0x1badb002u);
}

TEST_F(MultibootLoader, Elf64WithMultibootHeaderIsMultibootNotVmlinux) {
  ElfBuilder b;
  b.entry = 0x200000;
  b.Load(0x200000, Pattern(0x200, 6));
  std::vector<uint8_t> kernel = b.Build();
  PutMultibootHeader(kernel, b.DataOffset(0), 0);
  auto entry = Load(kernel);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->protocol, BootProtocol::kMultiboot);
  EXPECT_EQ(entry->description, "multiboot ELF64, 32-bit entry at 0x200000");
}

TEST_F(MultibootLoader, BadChecksumIsNamed) {
  std::vector<uint8_t> kernel = MakeMultibootKludge();
  kernel[0x48] ^= 1;  // checksum
  std::string error = Error(Load(kernel));
  EXPECT_NE(error.find("multiboot header at offset 0x40 has a bad checksum"), std::string::npos)
      << error;
}

TEST_F(MultibootLoader, UnknownRequiredFlagsAreNamed) {
  std::string error =
      Error(Load(MakeMultibootKludge({.flags = (1u << 16) | (1u << 3) | (1u << 5)})));
  EXPECT_NE(error.find("(flag bits 3, 5)"), std::string::npos) << error;
  // Optional bits (17-31) are fine.
  EXPECT_TRUE(Load(MakeMultibootKludge({.flags = (1u << 16) | (1u << 20)})));
}

TEST_F(MultibootLoader, VideoModeIsAcceptedWithWarning) {
  auto entry = Load(MakeMultibootKludge({.flags = (1u << 16) | multiboot::kFlagVideoMode}));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_NE(entry->description.find("warning"), std::string::npos);
  EXPECT_NE(entry->description.find("no framebuffer"), std::string::npos);
}

TEST_F(MultibootLoader, BadAddressFieldsAreRefused) {
  auto with = [&](size_t field, uint32_t value) {
    std::vector<uint8_t> kernel = MakeMultibootKludge();
    StoreLe<uint32_t>(kernel, 0x40 + field, value);
    return Error(Load(kernel));
  };
  EXPECT_NE(with(12, 0xfffff).find("below load_addr"), std::string::npos);     // header_addr
  EXPECT_NE(with(16, 0x0ff000).find("before the header"), std::string::npos);  // load_addr
  EXPECT_NE(with(20, 0x104000).find("truncated"), std::string::npos);          // load_end past file
  EXPECT_NE(with(20, 0x100010).find("not past header_addr"), std::string::npos);
  EXPECT_NE(with(24, 0x102000).find("bss_end_addr"), std::string::npos);
  EXPECT_NE(with(24, 0x8000000).find("does not fit in guest RAM"), std::string::npos);
  EXPECT_NE(with(28, 0x200000).find("outside the loaded image"), std::string::npos);
  std::string low = Error(Load(MakeMultibootKludge({.load_addr = 0x10000})));
  EXPECT_NE(low.find("below 1 MiB"), std::string::npos) << low;
}

TEST_F(MultibootLoader, LoadEndZeroMeansWholeFile) {
  std::vector<uint8_t> kernel = MakeMultibootKludge();
  StoreLe<uint32_t>(kernel, 0x40 + 20, 0);
  StoreLe<uint32_t>(kernel, 0x40 + 24, 0);
  ASSERT_TRUE(Load(kernel));
  EXPECT_EQ(memory_.ReadObj<uint8_t>(0x100000 + kernel.size() - 1), kernel.back());
}

TEST_F(MultibootLoader, HeaderMustBeInFirst8K) {
  std::vector<uint8_t> kernel(0x3000, 0);
  PutMultibootHeader(kernel, 0x2000, 1u << 16);
  EXPECT_NE(Error(Load(kernel)).find("not a bzImage, ELF or multiboot kernel"), std::string::npos);
  EXPECT_NE(Error(Load(kernel, "", std::nullopt, BootProtocol::kMultiboot))
                .find("--boot multiboot: kernel has no multiboot header"),
            std::string::npos);
}

TEST_F(MultibootLoader, WithoutKludgeTheKernelMustBeElf) {
  std::vector<uint8_t> kernel(0x1000, 0x90);
  PutMultibootHeader(kernel, 0x100, 0);
  EXPECT_NE(Error(Load(kernel)).find("is not ELF"), std::string::npos);
}

TEST_F(MultibootLoader, TruncatedAddressFieldsAreRefused) {
  std::vector<uint8_t> kernel(0x50, 0);
  PutMultibootHeader(kernel, 0x40, 1u << 16);
  EXPECT_NE(Error(Load(kernel)).find("address fields run past"), std::string::npos);
}

}  // namespace
}  // namespace vireo::boot
