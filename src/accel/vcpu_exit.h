// Why a vCPU stopped running guest code, in accelerator-neutral terms.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>

namespace vireo::accel {

enum class ExitReason : uint8_t {
  kIo,              // port I/O: handler reads or fills `data`
  kMmio,            // MMIO outside RAM: handler reads or fills `data`
  kHalt,            // HLT with no in-kernel irqchip to wait in
  kShutdown,        // triple fault
  kSystemReset,     // the accelerator saw a reset request
  kSystemShutdown,  // the accelerator saw a poweroff request
  kInterrupted,     // kicked out of the run loop (signal / immediate exit)
  kInternalError,   // accelerator could not emulate or continue
  kFailEntry,       // hardware refused to enter the guest
  kDebug,
  kUnknown,
  kCount,
};

std::string_view ExitReasonName(ExitReason reason);

struct VcpuExit {
  ExitReason reason = ExitReason::kUnknown;
  bool is_write = false;
  uint64_t address = 0;  // port or guest-physical address
  uint32_t size = 0;     // access width in bytes
  uint32_t count = 1;    // repetitions for string I/O
  // The access's data, living in the accelerator's exit area: size*count bytes.
  // For reads the handler fills it and the next Run() hands it to the guest.
  std::span<uint8_t> data;
  uint64_t detail = 0;  // accelerator-specific code (KVM exit reason, suberror, hw reason)
  std::span<const uint64_t> extra;  // accelerator-specific words (KVM internal.data)
  // For kInternalError: what went wrong in words, when the accelerator can say (static).
  const char* description = nullptr;
};

}  // namespace vireo::accel
