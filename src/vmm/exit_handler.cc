#include "vmm/exit_handler.h"

#include <fmt/format.h>
#include <linux/kvm.h>

#include <array>

namespace vireo {
namespace {

using accel::ExitReason;

// Port and MMIO accesses: string I/O repeats `count` times over consecutive data slots.
void HandleBusAccess(const accel::VcpuExit& exit, const Bus& bus, uint64_t& unclaimed_reads,
                     uint64_t& unclaimed_writes) {
  for (uint32_t i = 0; i < exit.count; ++i) {
    std::span<uint8_t> slot = exit.data.subspan(static_cast<size_t>(i) * exit.size, exit.size);
    if (exit.is_write) {
      if (!bus.Write(exit.address, slot)) Bump(unclaimed_writes);
    } else {
      if (!bus.ReadOrOpenBus(exit.address, slot)) Bump(unclaimed_reads);
    }
  }
}

}  // namespace

ExitAction HandleExit(const accel::VcpuExit& exit, ExitContext& ctx) {
  ctx.counters.Count(exit.reason);
  switch (exit.reason) {
    case ExitReason::kIo:
      HandleBusAccess(exit, ctx.pio, ctx.counters.pio_unclaimed_reads,
                      ctx.counters.pio_unclaimed_writes);
      return ctx.stop.stopped() ? ExitAction::kStop : ExitAction::kContinue;
    case ExitReason::kMmio:
      HandleBusAccess(exit, ctx.mmio, ctx.counters.mmio_unclaimed_reads,
                      ctx.counters.mmio_unclaimed_writes);
      return ctx.stop.stopped() ? ExitAction::kStop : ExitAction::kContinue;
    case ExitReason::kInterrupted:  // a kick: leave if a stop was requested
    case ExitReason::kHalt:         // only without an in-kernel irqchip: re-enter and wait
      return ctx.stop.stopped() ? ExitAction::kStop : ExitAction::kContinue;
    case ExitReason::kShutdown:
      // A triple fault resets a PC.
      ctx.stop.Request({StopReason::kReset, 0, "triple-fault"});
      return ExitAction::kStop;
    case ExitReason::kSystemReset:
      ctx.stop.Request({StopReason::kReset, 0, "kvm-system-event"});
      return ExitAction::kStop;
    case ExitReason::kSystemShutdown:
      ctx.stop.Request({StopReason::kPowerOff, 0, "kvm-system-event"});
      return ExitAction::kStop;
    case ExitReason::kDebug:
    case ExitReason::kInternalError:
    case ExitReason::kFailEntry:
    case ExitReason::kUnknown:
    case ExitReason::kCount:
      return ExitAction::kFatal;
  }
  return ExitAction::kFatal;
}

std::string DescribeFatalExit(const accel::VcpuExit& exit, accel::Vcpu& vcpu,
                              const GuestMemory& memory) {
  std::string what;
  switch (exit.reason) {
    case ExitReason::kInternalError:
      if (exit.description != nullptr) {
        what = exit.description;
      } else if (exit.extra.empty() && exit.detail > 0 && exit.detail < 4096 &&
                 exit.detail != KVM_INTERNAL_ERROR_EMULATION) {
        what = fmt::format("KVM_RUN failed (errno {})", exit.detail);
      } else {
        const char* sub = exit.detail == KVM_INTERNAL_ERROR_EMULATION  ? "emulation failure"
                          : exit.detail == KVM_INTERNAL_ERROR_SIMUL_EX ? "simultaneous exceptions"
                          : exit.detail == KVM_INTERNAL_ERROR_DELIVERY_EV ? "event delivery failed"
                                                                          : "internal error";
        what = fmt::format("KVM internal error, suberror {} ({})", exit.detail, sub);
      }
      break;
    case ExitReason::kFailEntry:
      what = fmt::format("guest entry failed, hardware reason {:#x}", exit.detail);
      break;
    case ExitReason::kDebug:
      what = "unexpected debug exit";
      break;
    default:
      what = fmt::format("unhandled exit (KVM exit reason {})", exit.detail);
      break;
  }
  std::string out = fmt::format("vCPU {}: {}", vcpu.id(), what);
  auto regs = vcpu.GetRegisters();
  auto sregs = vcpu.GetSpecialRegisters();
  if (!regs || !sregs) return out + " (registers unreadable)";
  out += fmt::format(" at RIP {:#x} (CS {:#x}, CR0 {:#x}, EFER {:#x})", regs->rip,
                     sregs->cs.selector, sregs->cr0, sregs->efer);
  // Instruction bytes: linear = CS base + RIP, translated by the vCPU's own paging.
  uint64_t linear = sregs->cs.base + regs->rip;
  std::array<uint8_t, 15> bytes{};
  size_t got = 0;
  while (got < bytes.size()) {
    auto physical = vcpu.TranslateAddress(linear + got);
    if (!physical) break;
    size_t in_page = 4096 - ((linear + got) & 0xfff);
    size_t chunk = std::min(in_page, bytes.size() - got);
    if (!memory.Read(*physical, std::span(bytes).subspan(got, chunk))) break;
    got += chunk;
  }
  if (got == 0) return out + ", instruction bytes unreadable";
  out += ", instruction bytes:";
  for (size_t i = 0; i < got; ++i) out += fmt::format(" {:02x}", bytes[i]);
  return out;
}

}  // namespace vireo
