// Everything `vireo run` was asked for, after parsing and validation.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "block/open_image.h"
#include "boot/kernel_loader.h"
#include "memory/guest_memory.h"

namespace vireo {

enum class SerialMode { kStdio, kFile, kNone };

enum class VirtioTransport { kMmio, kPci };

// Where a KVM VM's interrupt controllers live (docs/interrupts.md): all in KVM, or the LAPICs
// in KVM and the IOAPIC, PIC and PIT in Vireo (KVM_CAP_SPLIT_IRQCHIP). The software CPU
// always uses Vireo's.
enum class IrqchipMode { kKernel, kSplit };

struct NetConfig {
  std::string tap;  // tap device name (created if missing; needs CAP_NET_ADMIN)
  std::string mac;  // "52:54:00:12:34:56"; empty: random, locally administered
};

struct DiskConfig {
  std::string path;
  bool read_only = false;
  std::string serial;       // virtio-blk GET_ID, at most 20 bytes
  bool cache_none = false;  // O_DIRECT; default writeback through the page cache
  bool discard = false;     // pass DISCARD/WRITE_ZEROES through to the file
  block::ImageFormat format = block::ImageFormat::kAuto;  // probed when kAuto
};

struct VmConfig {
  std::optional<std::string> kernel_path;  // none: the built-in default guest
  std::optional<std::string> initrd_path;
  std::string cmdline;
  int cpus = 1;
  uint64_t memory = 256ull << 20;
  SerialMode serial = SerialMode::kStdio;
  std::string serial_path;          // for SerialMode::kFile
  std::map<int, int> cpu_affinity;  // vCPU index → host CPU
  MemoryOptions memory_options;
  bool stats = false;
  bool no_reboot = false;  // a guest reset ends vireo instead of restarting
  boot::BootProtocol boot_protocol = boot::BootProtocol::kAuto;
  // --kernel-decompress: who unpacks a bzImage's payload (auto: the host with --accel emu).
  boot::PayloadDecompression kernel_decompression = boot::PayloadDecompression::kGuest;
  // virtio devices
  VirtioTransport transport = VirtioTransport::kPci;
  std::vector<DiskConfig> disks;
  std::vector<NetConfig> nets;
  struct Vsock {
    uint64_t cid = 3;
    std::string uds;  // host side: the VMM listens here; guest connects go to <uds>_<port>
  };
  std::optional<Vsock> vsock;
  bool rng = false;
  bool console = false;  // virtio-console on stdio; stdin then goes to it, not the UART
  bool balloon = false;
  bool hpet = false;  // the HPET at 0xfed00000 and its ACPI table (--hpet)
  // --irqchip (KVM only)
  IrqchipMode irqchip = IrqchipMode::kKernel;
};

}  // namespace vireo
