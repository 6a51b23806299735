#include "boot/pvh.h"

#include <gtest/gtest.h>

#include "arch/x86/layout.h"
#include "base/bytes.h"
#include "boot/test_images.h"

namespace vireo::boot {
namespace {

using testing::ElfBuilder;
using testing::MakeMachine;
using testing::MakeMemory;
using testing::Pattern;

class PvhLoader : public ::testing::Test {
 protected:
  Result<BootEntry> Load(std::vector<uint8_t> kernel,
                         std::optional<std::vector<uint8_t>> initrd = std::nullopt,
                         BootProtocol protocol = BootProtocol::kAuto) {
    BootImage image{std::move(kernel), std::move(initrd), "console=hvc0"};
    return LoadKernel(memory_, image, protocol, machine_);
  }
  std::string Error(Result<BootEntry> result) { return result ? "" : result.error().message; }

  GuestMemory memory_ = MakeMemory();
  MachineInfo machine_ = MakeMachine();
};

ElfBuilder PvhKernel(bool is64 = true) {
  ElfBuilder b;
  b.is64 = is64;
  b.entry = 0xffffffff81000000 & (is64 ? ~0ull : 0xffffffffull);  // the virtual one, unused
  b.Load(0x1000000, Pattern(0x2000, 8), 0x4000).PvhNote(0x1000100, is64 ? 8 : 4);
  return b;
}

TEST_F(PvhLoader, EntersAtNoteAddressWithStartInfo) {
  auto entry = Load(PvhKernel().Build());
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->protocol, BootProtocol::kPvh);
  EXPECT_EQ(entry->mode, EntryMode::kProtected32);
  EXPECT_EQ(entry->entry_point, 0x1000100u);
  EXPECT_EQ(entry->rbx, x86::kBootInfo);
  EXPECT_EQ(entry->description, "PVH ELF64, 32-bit entry at 0x1000100");

  auto info = memory_.ReadObj<pvh::StartInfo>(x86::kBootInfo);
  ASSERT_TRUE(info);
  EXPECT_EQ(info->magic, 0x336ec578u);
  EXPECT_EQ(info->version, 1u);
  EXPECT_EQ(info->nr_modules, 0u);
  EXPECT_EQ(info->cmdline_paddr, x86::kCmdline);
  EXPECT_EQ(info->rsdp_paddr, testing::kTestRsdp);
  ASSERT_EQ(info->memmap_entries, machine_.e820.size());
  for (size_t i = 0; i < machine_.e820.size(); ++i) {
    auto e = memory_.ReadObj<pvh::MemmapEntry>(info->memmap_paddr + i * sizeof(pvh::MemmapEntry));
    ASSERT_TRUE(e);
    EXPECT_EQ(e->addr, machine_.e820[i].addr);
    EXPECT_EQ(e->size, machine_.e820[i].size);
    EXPECT_EQ(e->type, static_cast<uint32_t>(machine_.e820[i].type));
  }
  EXPECT_GE(info->memmap_paddr, x86::kBootInfo);
  EXPECT_LE(info->memmap_paddr + info->memmap_entries * sizeof(pvh::MemmapEntry),
            x86::kBootInfo + x86::kBootInfoSize);
  std::vector<uint8_t> cmdline(13);
  ASSERT_TRUE(memory_.Read(x86::kCmdline, cmdline));
  EXPECT_EQ(std::string(cmdline.begin(), cmdline.end()), std::string("console=hvc0\0", 13));
}

TEST_F(PvhLoader, InitrdIsModuleZero) {
  std::vector<uint8_t> initrd = Pattern(10000, 3);
  auto entry = Load(PvhKernel().Build(), initrd);
  ASSERT_TRUE(entry) << entry.error().message;
  auto info = memory_.ReadObj<pvh::StartInfo>(x86::kBootInfo);
  ASSERT_TRUE(info);
  ASSERT_EQ(info->nr_modules, 1u);
  auto module = memory_.ReadObj<pvh::ModlistEntry>(info->modlist_paddr);
  ASSERT_TRUE(module);
  EXPECT_EQ(module->paddr % 4096, 0u);
  EXPECT_EQ(module->size, initrd.size());
  EXPECT_LE(module->paddr + module->size, testing::kTestMemory);
  std::vector<uint8_t> got(initrd.size());
  ASSERT_TRUE(memory_.Read(module->paddr, got));
  EXPECT_EQ(got, initrd);
}

TEST_F(PvhLoader, Elf32WithFourByteNote) {
  auto entry = Load(PvhKernel(false).Build());
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->entry_point, 0x1000100u);
  EXPECT_EQ(entry->description, "PVH ELF32, 32-bit entry at 0x1000100");
}

TEST_F(PvhLoader, NotesOtherThanPhys32EntryAreSkipped) {
  ElfBuilder b;
  b.Load(0x1000000, Pattern(0x100, 8)).Note("GNU", 3, Pattern(20, 1)).Note("Xen", 6, {1, 2, 3});
  b.PvhNote(0x1000010);
  auto entry = Load(b.Build());
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->entry_point, 0x1000010u);
}

TEST_F(PvhLoader, ExplicitPvhNeedsTheNote) {
  ElfBuilder b;
  b.entry = 0x1000000;
  b.Load(0x1000000, Pattern(0x100, 8));
  EXPECT_EQ(Error(Load(b.Build(), std::nullopt, BootProtocol::kPvh)),
            "--boot pvh: kernel has no XEN_ELFNOTE_PHYS32_ENTRY note; build it with CONFIG_PVH "
            "or use --boot linux");
  EXPECT_NE(Error(Load(testing::MakeBzImage(), std::nullopt, BootProtocol::kPvh))
                .find("--boot pvh: kernel is not an ELF file"),
            std::string::npos);
}

TEST_F(PvhLoader, MalformedNotesAreRefused) {
  ElfBuilder b = PvhKernel();
  std::vector<uint8_t> file = b.Build();
  StoreLe<uint32_t>(file, b.DataOffset(1), 0xfffffff0);  // namesz past the segment
  EXPECT_NE(Error(Load(file)).find("runs past the end of its PT_NOTE"), std::string::npos);

  ElfBuilder odd;
  odd.Load(0x1000000, Pattern(0x100, 8)).PvhNote(0x1000000, 3);
  EXPECT_NE(Error(Load(odd.Build())).find("3-byte value"), std::string::npos);

  ElfBuilder high;
  high.Load(0x1000000, Pattern(0x100, 8)).PvhNote(0x100000000);
  EXPECT_NE(Error(Load(high.Build())).find("above 4 GiB"), std::string::npos);

  ElfBuilder outside;
  outside.Load(0x1000000, Pattern(0x100, 8)).PvhNote(0x2000000);
  EXPECT_NE(Error(Load(outside.Build())).find("outside the kernel's loaded segments"),
            std::string::npos);
}

TEST_F(PvhLoader, MemoryMapMustFitTheBootInfoArea) {
  machine_.e820.assign(2000, {0, 4096, x86::E820Type::kRam});
  EXPECT_NE(Error(Load(PvhKernel().Build())).find("2000 entries"), std::string::npos);
}

TEST_F(PvhLoader, ExplicitLinuxBootsAPvhVmlinuxAsLinux) {
  ElfBuilder b = PvhKernel();
  b.entry = 0x1000000;
  auto entry = Load(b.Build(), std::nullopt, BootProtocol::kLinux);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->protocol, BootProtocol::kLinux);
  EXPECT_EQ(entry->entry_point, 0x1000000u);
}

}  // namespace
}  // namespace vireo::boot
