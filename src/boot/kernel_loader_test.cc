#include "boot/kernel_loader.h"

#include <gtest/gtest.h>

#include <random>

#include "arch/x86/layout.h"
#include "boot/test_images.h"

namespace vireo::boot {
namespace {

using testing::ElfBuilder;
using testing::MakeMachine;
using testing::MakeMemory;
using testing::Pattern;

std::string Error(const Result<BootEntry>& result) { return result ? "" : result.error().message; }

TEST(KernelLoader, ProtocolNames) {
  EXPECT_EQ(BootProtocolName(BootProtocol::kAuto), "auto");
  EXPECT_EQ(BootProtocolName(BootProtocol::kLinux), "linux");
  EXPECT_EQ(BootProtocolName(BootProtocol::kPvh), "pvh");
  EXPECT_EQ(BootProtocolName(BootProtocol::kMultiboot), "multiboot");
}

TEST(KernelLoader, UnknownImagesNameTheirFirstBytes) {
  GuestMemory memory = MakeMemory();
  BootImage image{{0x4d, 0x5a, 0x90, 0, 3, 0, 0, 0, 4, 0}, std::nullopt, ""};
  EXPECT_EQ(Error(LoadKernel(memory, image, BootProtocol::kAuto, MakeMachine())),
            "kernel image is not a bzImage, ELF or multiboot kernel (first bytes 4d 5a 90 00 03 "
            "00 00 00 ...); pass a bzImage, vmlinux, PVH or multiboot kernel");
  image.kernel.clear();
  EXPECT_NE(Error(LoadKernel(memory, image, BootProtocol::kAuto, MakeMachine())).find("empty"),
            std::string::npos);
}

TEST(KernelLoader, Elf32WithoutPvhOrMultibootIsRefused) {
  GuestMemory memory = MakeMemory();
  ElfBuilder b;
  b.is64 = false;
  b.entry = 0x100000;
  b.Load(0x100000, Pattern(0x100, 1));
  BootImage image{b.Build(), std::nullopt, ""};
  EXPECT_NE(Error(LoadKernel(memory, image, BootProtocol::kAuto, MakeMachine()))
                .find("neither a PVH note"),
            std::string::npos);
}

TEST(KernelLoader, ExplicitMultibootOnBzImageIsRefused) {
  GuestMemory memory = MakeMemory();
  BootImage image{testing::MakeBzImage(), std::nullopt, ""};
  EXPECT_NE(Error(LoadKernel(memory, image, BootProtocol::kMultiboot, MakeMachine()))
                .find("--boot multiboot"),
            std::string::npos);
}

TEST(KernelLoader, EmptyMemoryMapIsRefused) {
  GuestMemory memory = MakeMemory();
  MachineInfo machine = MakeMachine();
  machine.e820.clear();
  BootImage image{testing::MakeBzImage(), std::nullopt, ""};
  EXPECT_NE(Error(LoadKernel(memory, image, BootProtocol::kAuto, machine)).find("e820"),
            std::string::npos);
}

TEST(KernelLoader, EmptyInitrdIsRefused) {
  GuestMemory memory = MakeMemory();
  BootImage image{testing::MakeBzImage(), std::vector<uint8_t>{}, ""};
  EXPECT_NE(Error(LoadKernel(memory, image, BootProtocol::kAuto, MakeMachine()))
                .find("initrd file is empty"),
            std::string::npos);
}

// Valid images of every kind, mutated at random: every result must be a BootEntry or
// an error, never a crash or a write outside guest RAM (run under ASan to see the latter).
TEST(KernelLoader, MutatedImagesNeverCrash) {
  GuestMemory memory = MakeMemory();
  MachineInfo machine = MakeMachine();
  std::vector<std::vector<uint8_t>> seeds;
  seeds.push_back(testing::MakeBzImage({.payload_size = 0x1000}));
  {
    ElfBuilder b;
    b.Load(0x1000000, Pattern(0x400, 1), 0x800).PvhNote(0x1000000);
    seeds.push_back(b.Build());
  }
  {
    ElfBuilder b;
    b.entry = 0x1000000;
    b.Load(0x1000000, Pattern(0x400, 2)).Load(0x1100000, Pattern(0x100, 3), 0x1000);
    seeds.push_back(b.Build());
  }
  {
    ElfBuilder b;
    b.is64 = false;
    b.entry = 0x100010;
    b.Load(0x100000, Pattern(0x400, 4));
    std::vector<uint8_t> file = b.Build();
    testing::PutMultibootHeader(file, b.DataOffset(0), 3);
    seeds.push_back(file);
  }
  seeds.push_back(testing::MakeMultibootKludge({.size = 0x800}));

  std::mt19937_64 rng(0x5eed);
  constexpr uint32_t kInteresting[] = {
      0, 1, 0x7f, 0x80, 0xff, 0x1000, 0x100000, 0x7fffffff, 0x80000000, 0xfffffff0, 0xffffffff};
  int loaded = 0;
  for (int iteration = 0; iteration < 2000; ++iteration) {
    std::vector<uint8_t> kernel;
    if (iteration % 10 == 9) {
      kernel.resize(rng() % 2048);
      for (uint8_t& byte : kernel) byte = static_cast<uint8_t>(rng());
    } else {
      kernel = seeds[rng() % seeds.size()];
      int mutations = 1 + static_cast<int>(rng() % 8);
      for (int m = 0; m < mutations && !kernel.empty(); ++m) {
        // Most headers live in the first 0x300 bytes: aim there more often.
        size_t span = (rng() % 2) ? std::min<size_t>(kernel.size(), 0x300) : kernel.size();
        size_t at = rng() % span;
        uint64_t kind = rng() % 16;  // truncation is rare: it hides the other mutations
        if (kind < 5) {
          kernel[at] ^= static_cast<uint8_t>(1u << (rng() % 8));
        } else if (kind < 10) {
          kernel[at] = static_cast<uint8_t>(rng());
        } else if (kind < 15) {
          uint32_t value = kInteresting[rng() % std::size(kInteresting)];
          for (size_t i = 0; i < 4 && at + i < kernel.size(); ++i) {
            kernel[at + i] = static_cast<uint8_t>(value >> (8 * i));
          }
        } else {
          kernel.resize(at);
        }
      }
    }
    BootImage image{std::move(kernel), std::nullopt, "console=ttyS0"};
    if (rng() % 4 == 0) image.initrd = std::vector<uint8_t>(1 + rng() % 20000, 0xab);
    // Half auto-detected, half forced (often the wrong protocol for the image).
    auto protocol = rng() % 2 ? BootProtocol::kAuto : static_cast<BootProtocol>(rng() % 4);
    auto entry = LoadKernel(memory, image, protocol, machine);
    if (entry) {
      ++loaded;
      EXPECT_FALSE(entry->description.empty());
      EXPECT_LT(entry->entry_point, 1ull << 32);
    } else {
      EXPECT_FALSE(entry.error().message.empty());
      EXPECT_EQ(entry.error().message.find('\n'), std::string::npos);
    }
  }
  EXPECT_GT(loaded, 0);  // the mutations are not so wild that nothing boots
}

}  // namespace
}  // namespace vireo::boot
