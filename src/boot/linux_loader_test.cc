#include "boot/linux_loader.h"

#include <gtest/gtest.h>

#include "arch/x86/layout.h"
#include "boot/bootparam.h"
#include "boot/kernel_payload.h"
#include "boot/test_images.h"

namespace vireo::boot {
namespace {

using linux_boot::BootParams;
using testing::BzImageOptions;
using testing::ElfBuilder;
using testing::MakeBzImage;
using testing::MakeMachine;
using testing::MakeMemory;
using testing::Pattern;

class LinuxLoader : public ::testing::Test {
 protected:
  Result<BootEntry> Load(std::vector<uint8_t> kernel, std::string cmdline = "console=ttyS0",
                         std::optional<std::vector<uint8_t>> initrd = std::nullopt,
                         BootProtocol protocol = BootProtocol::kAuto) {
    BootImage image{std::move(kernel), std::move(initrd), std::move(cmdline)};
    return LoadKernel(memory_, image, protocol, machine_);
  }
  // --kernel-decompress host.
  Result<BootEntry> LoadUnpacked(std::vector<uint8_t> kernel,
                                 std::optional<std::vector<uint8_t>> initrd = std::nullopt) {
    BootImage image{std::move(kernel), std::move(initrd), "console=ttyS0",
                    PayloadDecompression::kHost};
    return LoadKernel(memory_, image, BootProtocol::kAuto, machine_);
  }
  std::string Error(Result<BootEntry> result) { return result ? "" : result.error().message; }
  BootParams ZeroPage() {
    auto params = std::make_unique<BootParams>();
    EXPECT_TRUE(memory_.Read(x86::kZeroPage,
                             {reinterpret_cast<uint8_t*>(params.get()), sizeof(BootParams)}));
    return *params;
  }
  std::string StringAt(GuestAddress addr) {
    std::string text;
    for (int i = 0; i < 0x10000; ++i) {
      uint8_t c = memory_.ReadObj<uint8_t>(addr + i).value_or(0);
      if (c == 0) break;
      text += static_cast<char>(c);
    }
    return text;
  }

  GuestMemory memory_ = MakeMemory();
  MachineInfo machine_ = MakeMachine();
};

TEST_F(LinuxLoader, BzImageEntersAt64BitEntryWithZeroPage) {
  std::vector<uint8_t> kernel = MakeBzImage();
  auto entry = Load(kernel);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->protocol, BootProtocol::kLinux);
  EXPECT_EQ(entry->mode, EntryMode::kLong64);
  EXPECT_EQ(entry->entry_point, 0x100200u);
  EXPECT_EQ(entry->rsi, x86::kZeroPage);
  EXPECT_EQ(entry->description, "bzImage, boot protocol 2.15, 64-bit entry at 0x100200");

  // The protected-mode code, after 4 setup sectors and the boot sector, lands at 1 MiB.
  std::vector<uint8_t> loaded(0x10000);
  ASSERT_TRUE(memory_.Read(x86::kHighMemory, loaded));
  EXPECT_EQ(loaded, Pattern(0x10000, 0x5a));

  BootParams params = ZeroPage();
  EXPECT_EQ(params.hdr.header, linux_boot::kHeaderMagic);
  EXPECT_EQ(params.hdr.boot_flag, 0xaa55);
  EXPECT_EQ(params.hdr.setup_sects, 4);
  EXPECT_EQ(params.hdr.version, 0x20f);
  EXPECT_EQ(params.hdr.type_of_loader, 0xff);
  EXPECT_EQ(params.hdr.cmd_line_ptr, x86::kCmdline);
  EXPECT_EQ(params.hdr.kernel_alignment, 0x200000u);  // copied from the image
  EXPECT_EQ(params.hdr.ramdisk_image, 0u);
  EXPECT_EQ(params.sentinel, 0);
  EXPECT_EQ(StringAt(x86::kCmdline), "console=ttyS0");
  EXPECT_EQ(params.acpi_rsdp_addr, testing::kTestRsdp);
  ASSERT_EQ(params.e820_entries, machine_.e820.size());
  for (size_t i = 0; i < machine_.e820.size(); ++i) {
    EXPECT_EQ(params.e820_table[i].addr, machine_.e820[i].addr);
    EXPECT_EQ(params.e820_table[i].size, machine_.e820[i].size);
    EXPECT_EQ(params.e820_table[i].type, static_cast<uint32_t>(machine_.e820[i].type));
  }
}

TEST_F(LinuxLoader, SetupSectsZeroMeansFour) {
  auto entry = Load(MakeBzImage({.setup_sects = 0}));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(memory_.ReadObj<uint8_t>(x86::kHighMemory), Pattern(1, 0x5a)[0]);
}

TEST_F(LinuxLoader, InitrdGoesPageAlignedAtTopOfRam) {
  std::vector<uint8_t> initrd = Pattern(3 * 4096 + 100, 9);
  auto entry = Load(MakeBzImage(), "", initrd);
  ASSERT_TRUE(entry) << entry.error().message;
  BootParams params = ZeroPage();
  uint64_t want = (testing::kTestMemory - initrd.size()) & ~uint64_t{4095};
  EXPECT_EQ(params.hdr.ramdisk_image, want);
  EXPECT_EQ(params.hdr.ramdisk_size, initrd.size());
  EXPECT_EQ(params.ext_ramdisk_image, 0u);
  EXPECT_EQ(params.ext_ramdisk_size, 0u);
  std::vector<uint8_t> got(initrd.size());
  ASSERT_TRUE(memory_.Read(want, got));
  EXPECT_EQ(got, initrd);
  EXPECT_EQ(StringAt(x86::kCmdline), "");
  EXPECT_NE(entry->description.find(fmt::format(", initrd 12388 bytes at {:#x}", want)),
            std::string::npos)
      << entry->description;
}

TEST_F(LinuxLoader, InitrdHonoursInitrdAddrMax) {
  std::vector<uint8_t> initrd(8192, 1);
  auto entry = Load(MakeBzImage({.initrd_addr_max = 0x1ffffff}), "", initrd);
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(ZeroPage().hdr.ramdisk_image, 0x2000000u - 8192);
}

TEST_F(LinuxLoader, InitrdTooLargeNamesSizeAndFix) {
  std::string error = Error(Load(MakeBzImage(), "", std::vector<uint8_t>(63ull << 20)));
  EXPECT_NE(error.find("initrd (63 MiB) does not fit"), std::string::npos) << error;
  EXPECT_NE(error.find("--memory"), std::string::npos) << error;
}

TEST_F(LinuxLoader, InitrdNeverOverlapsKernelInitSize) {
  // The kernel reserves 60 MiB for decompression; 8 MiB of initrd cannot go above it.
  std::string error =
      Error(Load(MakeBzImage({.init_size = 60 << 20}), "", std::vector<uint8_t>(8 << 20)));
  EXPECT_NE(error.find("does not fit between the kernel's end at 0x3d00000"), std::string::npos)
      << error;
}

TEST_F(LinuxLoader, KernelLargerThanRamIsRefused) {
  std::string error = Error(Load(MakeBzImage({.init_size = 100 << 20})));
  EXPECT_NE(error.find("kernel needs 100 MiB"), std::string::npos) << error;
}

TEST_F(LinuxLoader, CommandLineLimitComesFromHeader) {
  EXPECT_TRUE(Load(MakeBzImage({.cmdline_size = 100}), std::string(100, 'x')));
  std::string error = Error(Load(MakeBzImage({.cmdline_size = 100}), std::string(101, 'x')));
  EXPECT_EQ(error, "kernel command line is 101 bytes; the limit is 100 bytes; shorten it");
  // However large the header's limit, the layout's window caps it.
  error = Error(Load(MakeBzImage({.cmdline_size = 0xffffffff}), std::string(70000, 'x')));
  EXPECT_EQ(error, "kernel command line is 70000 bytes; the limit is 65535 bytes; shorten it");
}

TEST_F(LinuxLoader, CommandLineWithNulIsRefused) {
  EXPECT_NE(Error(Load(MakeBzImage(), std::string("a\0b", 3))).find("NUL byte at offset 1"),
            std::string::npos);
}

TEST_F(LinuxLoader, OldProtocolsAndZImagesAreRefused) {
  EXPECT_EQ(Error(Load(MakeBzImage({.version = 0x205}))),
            "bzImage uses boot protocol 2.05; Vireo needs 2.06 or later (Linux 2.6.22+)");
  EXPECT_NE(Error(Load(MakeBzImage({.loadflags = 0}))).find("zImage"), std::string::npos);
}

TEST_F(LinuxLoader, WithoutXlfKernel64Uses32BitEntry) {
  auto entry = Load(MakeBzImage({.xloadflags = 0}));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->mode, EntryMode::kProtected32);
  EXPECT_EQ(entry->entry_point, x86::kHighMemory);
  EXPECT_EQ(entry->rsi, x86::kZeroPage);
  EXPECT_NE(entry->description.find("32-bit entry at 0x100000"), std::string::npos);
}

TEST_F(LinuxLoader, RsdpOnlyForProtocol214AndLater) {
  ASSERT_TRUE(Load(MakeBzImage({.version = 0x20d})));
  EXPECT_EQ(ZeroPage().acpi_rsdp_addr, 0u);
  ASSERT_TRUE(Load(MakeBzImage({.version = 0x20e})));
  EXPECT_EQ(ZeroPage().acpi_rsdp_addr, testing::kTestRsdp);
}

TEST_F(LinuxLoader, TruncatedBzImagesAreRefused) {
  std::vector<uint8_t> kernel = MakeBzImage();
  std::string error = Error(Load({kernel.begin(), kernel.begin() + 0x204}));
  EXPECT_NE(error.find("not a bzImage"), std::string::npos) << error;  // no full "HdrS"
  error = Error(Load({kernel.begin(), kernel.begin() + 0x207}));
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  error = Error(Load({kernel.begin(), kernel.begin() + 0x400}));
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
  error = Error(Load({kernel.begin(), kernel.begin() + 5 * 512}));  // setup only, no payload
  EXPECT_NE(error.find("truncated"), std::string::npos) << error;
}

TEST_F(LinuxLoader, TooManyE820EntriesAreRefused) {
  machine_.e820.assign(129, {0, 4096, x86::E820Type::kRam});
  EXPECT_NE(Error(Load(MakeBzImage())).find("129 entries"), std::string::npos);
}

TEST_F(LinuxLoader, VmlinuxLoadsSegmentsWithSynthesizedHeader) {
  ElfBuilder b;
  b.entry = 0x1000000;
  b.Load(0x1000000, Pattern(0x3000, 4), 0x5000);
  auto entry = Load(b.Build(), "root=/dev/vda", std::vector<uint8_t>(4096, 7));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->protocol, BootProtocol::kLinux);
  EXPECT_EQ(entry->mode, EntryMode::kLong64);
  EXPECT_EQ(entry->entry_point, 0x1000000u);
  EXPECT_EQ(entry->rsi, x86::kZeroPage);
  EXPECT_EQ(entry->description.rfind("vmlinux ELF64, 64-bit entry at 0x1000000", 0), 0u);
  BootParams params = ZeroPage();
  EXPECT_EQ(params.hdr.boot_flag, 0xaa55);
  EXPECT_EQ(params.hdr.header, linux_boot::kHeaderMagic);
  EXPECT_EQ(params.hdr.version, 0x20f);
  EXPECT_EQ(params.hdr.type_of_loader, 0xff);
  EXPECT_EQ(params.hdr.cmd_line_ptr, x86::kCmdline);
  EXPECT_EQ(params.hdr.ramdisk_image, testing::kTestMemory - 4096);
  EXPECT_EQ(params.hdr.ramdisk_size, 4096u);
  EXPECT_EQ(params.acpi_rsdp_addr, testing::kTestRsdp);
  EXPECT_EQ(params.e820_entries, machine_.e820.size());
  EXPECT_EQ(StringAt(x86::kCmdline), "root=/dev/vda");
  EXPECT_EQ(memory_.ReadObj<uint8_t>(0x1004fff), 0);
}

TEST_F(LinuxLoader, VmlinuxEntryMustBeInsideSegments) {
  ElfBuilder b;
  b.entry = 0x2000000;
  b.Load(0x1000000, Pattern(0x100, 4));
  EXPECT_NE(Error(Load(b.Build())).find("outside its loaded segments"), std::string::npos);
}

// The vmlinux a compressed bzImage carries in these tests: 12 KiB of code and data at 16 MiB
// (LOAD_PHYSICAL_ADDR), then 8 KiB of bss.
std::vector<uint8_t> PackedVmlinux() {
  ElfBuilder b;
  b.entry = 0x1000000;
  b.Load(0x1000000, Pattern(0x3000, 9), 0x5000);
  return b.Build();
}

TEST_F(LinuxLoader, HostUnpackedBzImageEntersItsVmlinuxWithTheRealHeader) {
  for (auto compress : {testing::CompressGzip, testing::CompressXz, testing::CompressZstd}) {
    memory_ = MakeMemory();
    BzImageOptions options;
    options.compressed = compress(PackedVmlinux());
    auto entry = LoadUnpacked(MakeBzImage(options), std::vector<uint8_t>(4096, 7));
    ASSERT_TRUE(entry) << entry.error().message;
    EXPECT_EQ(entry->protocol, BootProtocol::kLinux);
    EXPECT_EQ(entry->mode, EntryMode::kLong64);
    EXPECT_EQ(entry->entry_point, 0x1000000u);
    EXPECT_EQ(entry->rsi, x86::kZeroPage);
    std::string format(PayloadFormatName(DetectPayloadFormat(options.compressed)));
    EXPECT_EQ(entry->description.rfind(
                  "bzImage, boot protocol 2.15, " + format + " payload unpacked by Vireo", 0),
              0u)
        << entry->description;
    // The segments as the ELF says, bss zeroed; nothing of the compressed image at 1 MiB.
    std::vector<uint8_t> loaded(0x3000);
    ASSERT_TRUE(memory_.Read(0x1000000, loaded));
    EXPECT_EQ(loaded, Pattern(0x3000, 9));
    EXPECT_EQ(memory_.ReadObj<uint8_t>(0x1004fff), 0);
    EXPECT_EQ(memory_.ReadObj<uint8_t>(0x100000), 0);
    // The zero page carries the bzImage's own setup header, plus what the loader fills in.
    BootParams params = ZeroPage();
    EXPECT_EQ(params.hdr.version, 0x20f);
    EXPECT_EQ(params.hdr.kernel_alignment, 0x200000u);
    EXPECT_EQ(params.hdr.type_of_loader, 0xff);
    EXPECT_EQ(params.hdr.cmd_line_ptr, x86::kCmdline);
    EXPECT_EQ(params.hdr.ramdisk_size, 4096u);
    EXPECT_GE(params.hdr.ramdisk_image, 0x1005000u);
    EXPECT_EQ(StringAt(x86::kCmdline), "console=ttyS0");
  }
}

TEST_F(LinuxLoader, GuestDecompressionStaysTheDefault) {
  BzImageOptions options;
  options.compressed = testing::CompressXz(PackedVmlinux());
  auto entry = Load(MakeBzImage(options));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->entry_point, 0x100200u);
  EXPECT_EQ(entry->description, "bzImage, boot protocol 2.15, 64-bit entry at 0x100200");
}

TEST_F(LinuxLoader, HostUnpackingFallsBackToTheGuestForOtherFormats) {
  BzImageOptions options;
  options.compressed = {0x02, 0x21, 0x4c, 0x18, 1, 2, 3, 4};  // lz4
  auto entry = LoadUnpacked(MakeBzImage(options));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_EQ(entry->entry_point, 0x100200u);
  EXPECT_EQ(entry->description,
            "bzImage, boot protocol 2.15, 64-bit entry at 0x100200, lz4 payload unpacked by the "
            "guest");
  // Protocol 2.07 has no payload fields: the guest unpacks, whatever the payload is.
  options.version = 0x207;
  options.compressed = testing::CompressXz(PackedVmlinux());
  entry = LoadUnpacked(MakeBzImage(options));
  ASSERT_TRUE(entry) << entry.error().message;
  EXPECT_NE(entry->description.find("payload unpacked by the guest (boot protocol before 2.08"),
            std::string::npos)
      << entry->description;
}

TEST_F(LinuxLoader, HostUnpackingRefusesABadPayloadByName) {
  // The payload fields point past the end of the file.
  BzImageOptions options;
  options.compressed = testing::CompressXz(PackedVmlinux());
  std::vector<uint8_t> kernel = MakeBzImage(options);
  kernel.resize(kernel.size() - 64);
  EXPECT_NE(Error(LoadUnpacked(kernel)).find("lies past the end of the file"), std::string::npos);
  // A payload that unpacks to something other than an x86-64 ELF.
  options.compressed = testing::CompressXz(Pattern(0x2000, 1));
  EXPECT_NE(Error(LoadUnpacked(MakeBzImage(options))).find("the bzImage's xz payload"),
            std::string::npos)
      << Error(LoadUnpacked(MakeBzImage(options)));
  // A damaged compressed stream.
  options.compressed = testing::CompressZstd(PackedVmlinux());
  options.compressed.resize(options.compressed.size() / 2);
  EXPECT_NE(Error(LoadUnpacked(MakeBzImage(options))).find("zstd kernel payload is truncated"),
            std::string::npos)
      << Error(LoadUnpacked(MakeBzImage(options)));
}

TEST_F(LinuxLoader, ExplicitLinuxRefusesOtherFormats) {
  ElfBuilder b;
  b.is64 = false;
  b.entry = 0x100000;
  b.Load(0x100000, Pattern(0x100, 4));
  EXPECT_NE(Error(Load(b.Build(), "", std::nullopt, BootProtocol::kLinux)).find("32-bit ELF"),
            std::string::npos);
  EXPECT_NE(Error(Load(testing::MakeMultibootKludge(), "", std::nullopt, BootProtocol::kLinux))
                .find("--boot linux: kernel is neither a bzImage"),
            std::string::npos);
}

}  // namespace
}  // namespace vireo::boot
