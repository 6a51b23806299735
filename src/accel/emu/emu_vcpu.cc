#include "accel/emu/emu_vcpu.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#include <cstring>
#include <limits>

#include "accel/emu/emu_platform.h"
#include "accel/emu/emu_vm.h"
#include "accel/emu/mmu.h"
#include "accel/emu/msr.h"
#include "base/log.h"

namespace vireo::emu {
namespace {

constexpr uint64_t kApicBaseBsp = 1u << 8;
// FNINIT's control word (SDM Vol. 1 8.1.10) and the XCR0 a VMM sets up: x87 | SSE.
constexpr uint16_t kFcwInit = 0x037f;
constexpr uint64_t kXcr0X87Sse = 3;

}  // namespace

EmuVcpu::EmuVcpu(int id, EmuVm& vm, const GuestMemory& memory, DirtyLog* dirty_log)
    : id_(id), vm_(vm), memory_(memory), interp_(state_, memory, *this) {
  interp_.set_deliver_exceptions(true);
  interp_.set_dirty_log(dirty_log);
  interp_.set_code_tracker(vm_.code_tracker());
  // vCPU 0 is the bootstrap processor; the others wait for INIT and SIPI, as on a PC.
  if (id_ != 0) {
    state_.msr.apic_base &= ~kApicBaseBsp;
    mp_state_ = accel::MpState::kUninitialized;
  }
  vm_.SetVcpu(id_, this);
}

EmuVcpu::~EmuVcpu() {
  vm_.SetVcpu(id_, nullptr);
  Log(LogLevel::kInfo, "software CPU: vCPU {} retired {} instructions", id_, instructions_);
}

// The run loop sleeps with a raw futex (it needs a timeout for the platform's timers), so
// wakers use FUTEX_WAKE directly rather than std::atomic::notify_all, whose libstdc++
// implementation may skip the syscall when it counted no waiter of its own.
void EmuVcpu::WakeRunLoop() {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&events_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr,
          0);
}

void EmuVcpu::WaitForEvent(uint64_t deadline_ns) {
  timespec ts{};
  timespec* timeout = nullptr;
  if (deadline_ns != std::numeric_limits<uint64_t>::max()) {
    const uint64_t now = vm_.platform().clock().NowNs();
    if (deadline_ns <= now) return;
    const uint64_t ns = deadline_ns - now;
    ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    timeout = &ts;
  }
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&events_), FUTEX_WAIT_PRIVATE, 0, timeout, nullptr,
          0);
}

void EmuVcpu::WakeForInterrupt() {
  events_.fetch_or(kEventInterrupt, std::memory_order_release);
  WakeRunLoop();
}

void EmuVcpu::Kick() {
  events_.fetch_or(kEventKick, std::memory_order_release);
  WakeRunLoop();
}

void EmuVcpu::ClearKick() { events_.fetch_and(~kEventKick, std::memory_order_acq_rel); }

Status EmuVcpu::InjectInterrupt(uint8_t vector) {
  int none = -1;
  if (!pending_vector_.compare_exchange_strong(none, vector, std::memory_order_acq_rel)) {
    return Fail("vCPU {}: vector {:#x} is still waiting to be delivered", id_, none);
  }
  events_.fetch_or(kEventInterrupt, std::memory_order_release);
  WakeRunLoop();
  return {};
}

Status EmuVcpu::InjectNmi() {
  pending_nmi_.store(true, std::memory_order_release);
  events_.fetch_or(kEventInterrupt, std::memory_order_release);
  WakeRunLoop();
  return {};
}

bool EmuVcpu::DeliverPendingEvents() {
  // Nothing is delivered between an MMIO read exit and the instruction's completion.
  if (interp_.instruction_in_flight()) return true;
  if (pending_nmi_.load(std::memory_order_acquire) && interp_.NmiWindowOpen()) {
    pending_nmi_.store(false, std::memory_order_relaxed);
    halted_ = false;
    return interp_.InjectNmi() != StepStatus::kShutdown;
  }
  EmuPlatform& platform = vm_.platform();
  if (platform.TakeNmi(id_)) {
    pending_nmi_.store(true, std::memory_order_release);
    if (interp_.NmiWindowOpen()) {
      pending_nmi_.store(false, std::memory_order_relaxed);
      halted_ = false;
      return interp_.InjectNmi() != StepStatus::kShutdown;
    }
  }
  const int vector = pending_vector_.load(std::memory_order_acquire);
  if (vector >= 0 && interp_.InterruptWindowOpen()) {
    pending_vector_.store(-1, std::memory_order_release);
    halted_ = false;
    return interp_.InjectInterrupt(static_cast<uint8_t>(vector)) != StepStatus::kShutdown;
  }
  // The local APIC (or the PIC through LINT0) decides which vector is next; it moves to ISR
  // only when the CPU can take it now.
  if (vector < 0 && interp_.InterruptWindowOpen()) {
    uint8_t cr8 = static_cast<uint8_t>(state_.cr8);
    const std::optional<uint8_t> v = platform.TakeInterrupt(id_, state_.msr.apic_base, &cr8, true);
    if (v) {
      halted_ = false;
      return interp_.InjectInterrupt(*v) != StepStatus::kShutdown;
    }
  }
  return true;
}

void EmuVcpu::TakeStartupIpis() {
  // An instruction half done (an MMIO read being replayed) finishes first.
  if (interp_.instruction_in_flight()) return;
  const EmuPlatform::Startup start = vm_.platform().TakeStartup(id_);
  if (start.init) EnterInitState();
  if (start.sipi_vector >= 0 && mp_state_ == accel::MpState::kInitReceived) {
    StartFromSipi(static_cast<uint8_t>(start.sipi_vector));
  }
}

void EmuVcpu::EnterInitState() {
  // SDM Vol. 3 table 10-1, INIT column: real mode at F000:FFF0 with 64 KiB segments; x87,
  // SSE, MTRRs and the other MSRs keep their values.
  accel::Registers regs;
  regs.rip = 0xfff0;
  regs.rflags = 0x2;
  regs.rdx = 0x600;  // family 6 signature
  accel::SpecialRegisters s;
  const accel::Segment data{.limit = 0xffff, .type = 3, .present = true, .s = true};
  s.ds = s.es = s.fs = s.gs = s.ss = data;
  s.cs = data;
  s.cs.selector = 0xf000;
  s.cs.base = 0xffff0000;
  s.cs.type = 0xb;
  s.ldt = {.limit = 0xffff, .type = 2, .present = true};
  s.tr = {.limit = 0xffff, .type = 0xb, .present = true};
  s.gdt.limit = s.idt.limit = 0xffff;
  s.cr0 = 0x60000010;  // CD, NW, ET
  s.apic_base = state_.msr.apic_base;
  (void)SetSpecialRegisters(s);  // cannot fail: paging is off
  (void)SetRegisters(regs);
  state_.dr.fill(0);
  state_.dr[6] = 0xffff0ff0;
  state_.dr[7] = 0x400;
  state_.interrupt_shadow = false;
  state_.nmi_blocked = false;
  pending_vector_.store(-1);
  pending_nmi_.store(false);
  interp_.FlushDecodeCache();
  halted_ = false;
  mp_state_ = accel::MpState::kInitReceived;
}

void EmuVcpu::StartFromSipi(uint8_t vector) {
  // SDM Vol. 3 9.4.4.1: the AP starts at vector:0000 in real mode, CS base vector << 12.
  state_.seg[kCs].selector = static_cast<uint16_t>(vector << 8);
  state_.seg[kCs].base = uint64_t{vector} << 12;
  state_.rip = 0;
  mp_state_ = accel::MpState::kRunnable;
}

bool EmuVcpu::PlatformIo(bool mmio, bool is_write, uint64_t address, uint32_t size,
                         uint64_t* data) {
  EmuPlatform& platform = vm_.platform();
  if (!mmio) return platform.HandlePio(is_write, static_cast<uint16_t>(address), size, data);
  if (!platform.HandleMmio(id_, state_.msr.apic_base, is_write, address, size, data)) {
    return false;
  }
  state_.cr8 = platform.Tpr(id_) >> 4;  // a TPR write shows in CR8 (SDM 11.8.6)
  return true;
}

accel::VcpuExit EmuVcpu::DataExit(accel::ExitReason reason, bool is_write, uint64_t address,
                                  uint32_t size, uint64_t data) {
  accel::VcpuExit exit;
  exit.reason = reason;
  exit.is_write = is_write;
  exit.address = address;
  exit.size = size;
  exit.count = 1;
  exit_data_.fill(0);
  if (is_write) std::memcpy(exit_data_.data(), &data, size);
  exit.data = std::span(exit_data_).first(size);
  return exit;
}

accel::VcpuExit EmuVcpu::InternalError(const char* description) {
  accel::VcpuExit exit;
  exit.reason = accel::ExitReason::kInternalError;
  exit.description = description;
  return exit;
}

accel::VcpuExit EmuVcpu::Run() {
  // Finish what the previous exit left: the handler has filled exit_data_.
  if (pending_exit_ != PendingExit::kNone) {
    uint64_t data = 0;
    std::memcpy(&data, exit_data_.data(), sizeof(data));
    if (pending_exit_ == PendingExit::kIn) {
      interp_.CompleteIn(data);
    } else {
      interp_.CompleteMmioRead(data);
    }
    pending_exit_ = PendingExit::kNone;
  }
  for (;;) {
    // An MMIO read the last exit answered belongs to an instruction that has not retired:
    // it runs again with the answer before a kick or an event is taken. Parked in between,
    // the vCPU's state could not be saved (a pause for a snapshot or a migration would fail),
    // and an event delivered in between would make it issue the read, with its side effects,
    // again.
    const bool replay = interp_.instruction_in_flight();
    const uint32_t events = events_.load(std::memory_order_acquire);
    if ((events & kEventKick) && !replay) {
      accel::VcpuExit exit;
      exit.reason = accel::ExitReason::kInterrupted;
      return exit;
    }
    if (events & kEventInterrupt) {
      events_.fetch_and(~kEventInterrupt, std::memory_order_acq_rel);
    }
    TakeStartupIpis();
    if (mp_state_ != accel::MpState::kRunnable) {
      // Waiting for INIT or SIPI: nothing runs and no interrupt is taken (SDM 10.4.4).
      WaitForEvent(std::numeric_limits<uint64_t>::max());
      continue;
    }
    interp_.SyncCode();
    vm_.platform().PollTimers(id_, GuestTsc());
    if (!replay && !DeliverPendingEvents()) {
      accel::VcpuExit exit;
      exit.reason = accel::ExitReason::kShutdown;
      return exit;
    }
    if (halted_) {
      // Sleep until a kick, an interrupt or the next timer event; a spurious wake loops.
      WaitForEvent(vm_.platform().NextDeadlineNs(id_, GuestTsc()));
      continue;
    }
    // Step singly while an event waits for its window (STI / MOV SS shadow), so it is taken
    // at the first instruction boundary that allows it. A platform interrupt with IF clear
    // runs whole slices: it waits for STI, POPF or IRET anyway, and an STI; HLT pair halts
    // inside the shadow and is woken above.
    uint8_t cr8 = static_cast<uint8_t>(state_.cr8);
    const bool waiting = replay || pending_vector_.load(std::memory_order_relaxed) >= 0 ||
                         pending_nmi_.load(std::memory_order_relaxed) ||
                         (state_.flags.ifl() &&
                          vm_.platform().TakeInterrupt(id_, state_.msr.apic_base, &cr8, false));
    uint64_t retired = 0;
    const StepStatus status = interp_.Run(waiting ? 1 : kSlice, &retired);
    instructions_ += retired;
    switch (status) {
      case StepStatus::kOk:
        continue;
      case StepStatus::kHalt:
        ++instructions_;
        halted_ = true;
        continue;
      case StepStatus::kIo: {
        ++instructions_;
        const IoRequest& io = interp_.io();
        uint64_t pio_data = io.data;
        if (PlatformIo(false, io.is_write, io.port, io.size, &pio_data)) {
          if (!io.is_write) interp_.CompleteIn(pio_data);
          continue;
        }
        if (io.is_write) {
          if (vm_.SignalIoEvent(false, io.port, io.size, io.data)) continue;
          return DataExit(accel::ExitReason::kIo, true, io.port, io.size, io.data);
        }
        pending_exit_ = PendingExit::kIn;
        return DataExit(accel::ExitReason::kIo, false, io.port, io.size, 0);
      }
      case StepStatus::kMmio: {
        const MmioRequest& mmio = interp_.mmio();
        uint64_t mmio_data = mmio.data;
        if (PlatformIo(true, mmio.is_write, mmio.address, mmio.size, &mmio_data)) {
          if (mmio.is_write) {
            ++instructions_;
          } else {
            interp_.CompleteMmioRead(mmio_data);
          }
          continue;
        }
        if (mmio.is_write) {
          ++instructions_;
          if (vm_.SignalIoEvent(true, mmio.address, mmio.size, mmio.data)) continue;
          return DataExit(accel::ExitReason::kMmio, true, mmio.address, mmio.size, mmio.data);
        }
        pending_exit_ = PendingExit::kMmioRead;
        return DataExit(accel::ExitReason::kMmio, false, mmio.address, mmio.size, 0);
      }
      case StepStatus::kShutdown: {
        accel::VcpuExit exit;
        exit.reason = accel::ExitReason::kShutdown;
        return exit;
      }
      case StepStatus::kUnimplemented:
        return InternalError("the software CPU does not emulate this instruction yet");
      case StepStatus::kException:
        return InternalError("the software CPU left an exception undelivered");
    }
  }
}

Result<accel::Registers> EmuVcpu::GetRegisters() {
  accel::Registers r;
  const auto& g = state_.gpr;
  r.rax = g[kRax], r.rcx = g[kRcx], r.rdx = g[kRdx], r.rbx = g[kRbx];
  r.rsp = g[kRsp], r.rbp = g[kRbp], r.rsi = g[kRsi], r.rdi = g[kRdi];
  r.r8 = g[kR8], r.r9 = g[kR9], r.r10 = g[kR10], r.r11 = g[kR11];
  r.r12 = g[kR12], r.r13 = g[kR13], r.r14 = g[kR14], r.r15 = g[kR15];
  r.rip = state_.rip;
  r.rflags = state_.flags.Get();
  return r;
}

Status EmuVcpu::SetRegisters(const accel::Registers& r) {
  auto& g = state_.gpr;
  g[kRax] = r.rax, g[kRcx] = r.rcx, g[kRdx] = r.rdx, g[kRbx] = r.rbx;
  g[kRsp] = r.rsp, g[kRbp] = r.rbp, g[kRsi] = r.rsi, g[kRdi] = r.rdi;
  g[kR8] = r.r8, g[kR9] = r.r9, g[kR10] = r.r10, g[kR11] = r.r11;
  g[kR12] = r.r12, g[kR13] = r.r13, g[kR14] = r.r14, g[kR15] = r.r15;
  state_.rip = r.rip;
  state_.flags.Set(r.rflags | 0x2);
  return {};
}

Result<accel::SpecialRegisters> EmuVcpu::GetSpecialRegisters() {
  accel::SpecialRegisters s;
  s.es = state_.seg[kEs], s.cs = state_.seg[kCs], s.ss = state_.seg[kSs];
  s.ds = state_.seg[kDs], s.fs = state_.seg[kFs], s.gs = state_.seg[kGs];
  s.tr = state_.tr, s.ldt = state_.ldtr;
  s.gdt = state_.gdtr, s.idt = state_.idtr;
  s.cr0 = state_.cr0, s.cr2 = state_.cr2, s.cr3 = state_.cr3, s.cr4 = state_.cr4;
  s.cr8 = state_.cr8;
  s.efer = state_.efer;
  s.apic_base = state_.msr.apic_base;
  return s;
}

Status EmuVcpu::SetSpecialRegisters(const accel::SpecialRegisters& s) {
  state_.seg[kEs] = s.es, state_.seg[kCs] = s.cs, state_.seg[kSs] = s.ss;
  state_.seg[kDs] = s.ds, state_.seg[kFs] = s.fs, state_.seg[kGs] = s.gs;
  state_.tr = s.tr, state_.ldtr = s.ldt;
  state_.gdtr = s.gdt, state_.idtr = s.idt;
  state_.cr0 = s.cr0, state_.cr2 = s.cr2, state_.cr3 = s.cr3, state_.cr4 = s.cr4;
  state_.cr8 = s.cr8;
  state_.efer = s.efer;
  state_.msr.apic_base = s.apic_base;
  vm_.platform().SetApicBase(id_, s.apic_base);
  // New paging state: nothing cached under the old one may be used (PAE paging also reads
  // its PDPTEs now, as a MOV CR3 would).
  interp_.FlushTlb(true);
  const bool pae_paging =
      (state_.cr0 & kCr0Pg) && (state_.cr4 & kCr4Pae) && !(state_.efer & kEferLma);
  if (pae_paging && !LoadPdptes(state_, memory_)) {
    return Fail("CR3 {:#x}: a PAE page-directory-pointer entry has reserved bits set", state_.cr3);
  }
  return {};
}

Status EmuVcpu::SetCpuid(std::span<const accel::CpuidEntry> entries) {
  cpuid_.assign(entries.begin(), entries.end());
  return {};
}

void EmuVcpu::Cpuid(uint32_t leaf, uint32_t subleaf, uint32_t out[4]) {
  for (const accel::CpuidEntry& e : cpuid_) {
    if (e.function != leaf || ((e.flags & 1) && e.index != subleaf)) continue;
    out[0] = e.eax, out[1] = e.ebx, out[2] = e.ecx, out[3] = e.edx;
    return;
  }
  out[0] = out[1] = out[2] = out[3] = 0;  // a leaf we do not offer reads as zeros
}

uint64_t EmuVcpu::ReadTsc() { return __rdtsc(); }

bool EmuVcpu::ReadApicMsr(uint32_t index, uint64_t* value) {
  return vm_.platform().ReadMsr(id_, index, value);
}

bool EmuVcpu::WriteApicMsr(uint32_t index, uint64_t value, uint64_t tsc) {
  if (!vm_.platform().WriteMsr(id_, index, value, tsc)) return false;
  state_.cr8 = vm_.platform().Tpr(id_) >> 4;  // an x2APIC TPR write shows in CR8 (11.8.6)
  return true;
}

void EmuVcpu::ApicBaseChanged(uint64_t apic_base) { vm_.platform().SetApicBase(id_, apic_base); }

Status EmuVcpu::SetMsrs(std::span<const accel::MsrEntry> msrs) {
  for (const accel::MsrEntry& m : msrs) {
    if (!WriteMsr(interp_, m.index, m.value)) {
      return Fail(
          "MSR {:#x} = {:#x}: the software CPU does not emulate this MSR or refuses "
          "the value",
          m.index, m.value);
    }
  }
  return {};
}

Result<std::vector<accel::MsrEntry>> EmuVcpu::GetMsrs(std::span<const uint32_t> indices) {
  std::vector<accel::MsrEntry> out;
  out.reserve(indices.size());
  for (uint32_t index : indices) {
    uint64_t value = 0;
    if (!ReadMsr(interp_, index, &value)) {
      return Fail("MSR {:#x}: not emulated by the software CPU", index);
    }
    out.push_back({index, value});
  }
  return out;
}

Status EmuVcpu::SetupFpu() {
  // FNINIT's x87 state (SDM Vol. 1 8.1.10), MXCSR and its mask at their reset values.
  state_.fx = FxState{};
  state_.fx.set_fcw(kFcwInit);
  state_.xcr0 = kXcr0X87Sse;
  return {};
}

Status EmuVcpu::SetupLocalApic() {
  vm_.platform().SetupLint(id_);
  return {};
}

namespace {

// Every MSR the software CPU keeps (msr.h), in the order a save lists them.
constexpr uint32_t kSavedMsrs[] = {
    kMsrTsc, kMsrApicBase, kMsrSysenterCs, kMsrSysenterEsp, kMsrSysenterEip, kMsrMiscEnable,
    kMsrPat, kMsrMtrrDefType, kMsrStar, kMsrLstar, kMsrCstar, kMsrSfmask, kMsrFsBase, kMsrGsBase,
    kMsrKernelGsBase, kMsrTscAux,
    // After the TSC, as in KVM's list: a restored deadline compares against the restored TSC.
    EmuPlatform::kMsrTscDeadline};
// The XSAVE area as KVM's KVM_GET_XSAVE returns it: the FXSAVE image, then the XSAVE header
// whose first word (XSTATE_BV) says which components are present (SDM Vol. 1 13.4).
constexpr size_t kXsaveSize = 4096;
constexpr size_t kXstateBv = 512;
constexpr uint64_t kXcr0 = 0;

}  // namespace

Result<accel::VcpuSavedState> EmuVcpu::SaveState() {
  if (pending_exit_ != PendingExit::kNone || interp_.instruction_in_flight()) {
    return Fail(
        "vCPU {}: an I/O or MMIO exit is still being completed; save after Run() "
        "returns from a kick",
        id_);
  }
  // What the local APIC accepted for this parked vCPU but it has not looked at yet (an NMI,
  // INIT/SIPI) is taken now, as its next look would: the state below then holds it where
  // KVM's does (the pending NMI, the wait-for-SIPI MP state), not in the platform.
  if (vm_.platform().TakeNmi(id_)) pending_nmi_.store(true, std::memory_order_release);
  TakeStartupIpis();
  accel::VcpuSavedState s;
  s.cpuid = cpuid_;
  s.regs = *GetRegisters();
  s.sregs = *GetSpecialRegisters();
  s.xsave.assign(kXsaveSize, 0);
  std::memcpy(s.xsave.data(), state_.fx.image.data(), state_.fx.image.size());
  const uint64_t xstate_bv = state_.xcr0 & 3;  // x87 and SSE
  std::memcpy(s.xsave.data() + kXstateBv, &xstate_bv, sizeof(xstate_bv));
  s.xcrs.push_back({static_cast<uint32_t>(kXcr0), state_.xcr0});
  s.msrs = VIREO_TRY(GetMsrs(kSavedMsrs));
  s.lapic.resize(irqchip::LocalApic::kPageSize);
  vm_.platform().SaveLapic(id_, std::span<uint8_t, irqchip::LocalApic::kPageSize>(s.lapic));
  s.mp_state = mp_state_ != accel::MpState::kRunnable ? mp_state_
               : halted_                              ? accel::MpState::kHalted
                                                      : accel::MpState::kRunnable;
  s.events.interrupt_shadow = state_.interrupt_shadow ? 1 : 0;
  s.events.nmi_masked = state_.nmi_blocked;
  s.events.nmi_pending = pending_nmi_.load();
  const int vector = pending_vector_.load();
  if (vector >= 0) {
    s.events.interrupt_injected = true;
    s.events.interrupt_nr = static_cast<uint8_t>(vector);
  }
  s.debug.db = {state_.dr[0], state_.dr[1], state_.dr[2], state_.dr[3]};
  s.debug.dr6 = state_.dr[6];
  s.debug.dr7 = state_.dr[7];
  return s;
}

Status EmuVcpu::RestoreState(const accel::VcpuSavedState& s) {
  if (s.xsave.size() < state_.fx.image.size()) {
    return Fail("vCPU {}: the saved XSAVE area is {} bytes; at least {} are needed", id_,
                s.xsave.size(), state_.fx.image.size());
  }
  VIREO_TRY_STATUS(SetCpuid(s.cpuid));
  // EFER and the control registers first: MSR rules (LME while paging) depend on them.
  VIREO_TRY_STATUS(SetSpecialRegisters(s.sregs));
  VIREO_TRY_STATUS(SetRegisters(s.regs));
  std::memcpy(state_.fx.image.data(), s.xsave.data(), state_.fx.image.size());
  for (const accel::XcrEntry& xcr : s.xcrs) {
    if (xcr.index == kXcr0) state_.xcr0 = xcr.value;
  }
  // The LAPIC page after the APIC base (x2APIC mode, with the special registers) and before
  // the MSRs (IA32_TSC_DEADLINE needs the LVT timer's mode), as KVM orders them.
  if (s.lapic.empty()) {
    Log(LogLevel::kInfo,
        "vCPU {}: the snapshot has no local APIC page; the APIC keeps its reset state", id_);
  } else if (auto restored = vm_.platform().RestoreLapic(id_, s.lapic); !restored) {
    return Wrap(fmt::format("vCPU {}", id_), restored.error());
  }
  state_.cr8 = vm_.platform().Tpr(id_) >> 4;  // CR8 is TPR[7:4] (SDM 11.8.6)
  size_t skipped = 0;
  for (const accel::MsrEntry& m : s.msrs) {
    if (m.index == kMsrEfer) continue;  // already restored with the special registers
    if (!WriteMsr(interp_, m.index, m.value)) ++skipped;
  }
  if (skipped > 0) {
    Log(LogLevel::kInfo, "vCPU {}: {} saved MSRs are not emulated by the software CPU; skipped",
        id_, skipped);
  }
  halted_ = s.mp_state == accel::MpState::kHalted;
  // KVM's transient SIPI_RECEIVED has its registers set already: it runs.
  mp_state_ =
      s.mp_state == accel::MpState::kUninitialized || s.mp_state == accel::MpState::kInitReceived
          ? s.mp_state
          : accel::MpState::kRunnable;
  state_.interrupt_shadow = s.events.interrupt_shadow != 0;
  state_.nmi_blocked = s.events.nmi_masked;
  pending_nmi_.store(s.events.nmi_pending);
  pending_vector_.store(s.events.interrupt_injected ? s.events.interrupt_nr : -1);
  for (int i = 0; i < 4; ++i) state_.dr[i] = s.debug.db[i];
  state_.dr[6] = s.debug.dr6;
  state_.dr[7] = s.debug.dr7;
  pending_exit_ = PendingExit::kNone;
  return {};
}

std::optional<uint64_t> EmuVcpu::TranslateAddress(uint64_t linear) {
  const Translation t = Translate(state_, memory_, linear, Access::kRead, false);
  if (!t.ok) return std::nullopt;
  return t.physical;
}

}  // namespace vireo::emu
