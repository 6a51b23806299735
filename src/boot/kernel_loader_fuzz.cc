// libFuzzer entry for the kernel loaders: the first byte picks the protocol and whether
// an initrd goes along; the rest is the kernel image. Every input must end in a BootEntry
// or an error, never a crash. Build with clang (see CMakeLists.txt) and run
// `build/src/boot/boot_fuzz -max_len=65536`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <utility>
#include <vector>

#include "arch/x86/layout.h"
#include "boot/kernel_loader.h"

namespace {

constexpr uint64_t kFuzzMemory = 32ull << 20;

const vireo::GuestMemory& FuzzMemory() {
  // One guest RAM for the whole run: mapping it per input would dominate the time.
  static const vireo::GuestMemory memory = [] {
    auto ranges = vireo::x86::RamLayout(kFuzzMemory);
    auto created = vireo::GuestMemory::Create(ranges, {});
    if (!created) std::abort();
    return std::move(*created);
  }();
  return memory;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  using vireo::boot::BootProtocol;
  constexpr BootProtocol kProtocols[] = {BootProtocol::kAuto, BootProtocol::kLinux,
                                         BootProtocol::kPvh, BootProtocol::kMultiboot};
  vireo::boot::BootImage image;
  image.kernel.assign(data + 1, data + size);
  image.cmdline = "console=ttyS0";
  if (data[0] & 0x4) image.initrd = std::vector<uint8_t>(4096, 0xab);
  // A bzImage's payload through the host-side decompressors too.
  if (data[0] & 0x8) image.decompression = vireo::boot::PayloadDecompression::kHost;
  vireo::boot::MachineInfo machine{kFuzzMemory, vireo::x86::E820Map(kFuzzMemory), 0xe0000};
  auto entry = vireo::boot::LoadKernel(FuzzMemory(), image, kProtocols[data[0] & 3], machine);
  (void)entry;
  return 0;
}
