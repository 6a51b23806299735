#include "accel/kvm/kvm_vcpu.h"

#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <vector>

#include "accel/kvm/kvm_abi.h"
#include "accel/kvm/kvm_system.h"
#include "accel/kvm/kvm_vm.h"
#include "accel/kvm/split_irqchip.h"
#include "base/log.h"

namespace vireo::kvm {
namespace {

using accel::ExitReason;

void InstallKickHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_handler = [](int) {};  // only there to make KVM_RUN return EINTR
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: the ioctl must return
    sigaction(KickSignal(), &sa, nullptr);
  });
}

kvm_segment ToKvm(const accel::Segment& s) {
  kvm_segment k{};
  k.base = s.base;
  k.limit = s.limit;
  k.selector = s.selector;
  k.type = s.type;
  k.present = s.present;
  k.dpl = s.dpl;
  k.db = s.db;
  k.s = s.s;
  k.l = s.l;
  k.g = s.g;
  k.avl = s.avl;
  k.unusable = s.unusable;
  return k;
}

accel::Segment FromKvm(const kvm_segment& k) {
  accel::Segment s;
  s.base = k.base;
  s.limit = k.limit;
  s.selector = k.selector;
  s.type = k.type;
  s.present = k.present;
  s.dpl = k.dpl;
  s.db = k.db;
  s.s = k.s;
  s.l = k.l;
  s.g = k.g;
  s.avl = k.avl;
  s.unusable = k.unusable;
  return s;
}

}  // namespace

int KickSignal() { return SIGRTMIN; }

Result<std::unique_ptr<KvmVcpu>> KvmVcpu::Create(const KvmAccelerator& kvm, const KvmVm& vm,
                                                 int id) {
  InstallKickHandler();
  UniqueFd fd(::ioctl(vm.fd(), KVM_CREATE_VCPU, id));
  if (!fd) return Fail("KVM_CREATE_VCPU {} failed: {}", id, std::strerror(errno));
  void* run =
      ::mmap(nullptr, kvm.vcpu_mmap_size(), PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (run == MAP_FAILED)
    return Fail("mmap of vCPU {} run area failed: {}", id, std::strerror(errno));
  auto vcpu =
      std::unique_ptr<KvmVcpu>(new KvmVcpu(id, std::move(fd), Mapping(run, kvm.vcpu_mmap_size())));
  vcpu->kvm_fd_ = kvm.fd();
  vcpu->split_ = vm.split_irqchip();
  // The PIC's ExtINT goes to vCPU 0 (the BSP, whose LINT0 the firmware left in ExtINT mode).
  if (vcpu->split_ != nullptr && id == 0) {
    vcpu->split_->SetVcpu0Kick([v = vcpu.get()] { v->Kick(); });
  }
  return vcpu;
}

KvmVcpu::~KvmVcpu() {
  if (split_ != nullptr && id_ == 0) split_->SetVcpu0Kick(nullptr);
}

bool KvmVcpu::HandleSplitExit(kvm_run* r) {
  switch (r->exit_reason) {
    case KVM_EXIT_IRQ_WINDOW_OPEN:
      return true;  // the next entry injects the PIC's vector
    case KVM_EXIT_IOAPIC_EOI:
      split_->Eoi(r->eoi.vector);
      return true;
    case KVM_EXIT_IO: {
      if (!irqchip::PcIrqchip::ClaimsPort(r->io.port)) return false;
      uint8_t* bytes = reinterpret_cast<uint8_t*>(r) + r->io.data_offset;
      const bool out = r->io.direction == KVM_EXIT_IO_OUT;
      // 8-bit registers: a wider access uses its low byte, as on the emu platform.
      for (uint32_t i = 0; i < r->io.count; ++i) {
        uint8_t* element = bytes + static_cast<size_t>(i) * r->io.size;
        uint64_t data = element[0];
        split_->HandlePio(out, r->io.port, &data);
        if (!out) {
          std::memset(element, 0, r->io.size);
          element[0] = static_cast<uint8_t>(data);
        }
      }
      return true;
    }
    case KVM_EXIT_MMIO: {
      if (!irqchip::PcIrqchip::ClaimsMmio(r->mmio.phys_addr)) return false;
      const uint32_t size = std::min<uint32_t>(r->mmio.len, sizeof(r->mmio.data));
      uint64_t data = 0;
      if (r->mmio.is_write) std::memcpy(&data, r->mmio.data, size);
      split_->HandleMmio(r->mmio.is_write != 0, r->mmio.phys_addr, size, &data);
      if (!r->mmio.is_write) std::memcpy(r->mmio.data, &data, size);
      return true;
    }
    default:
      return false;
  }
}

accel::VcpuExit KvmVcpu::Run() {
  thread_.store(pthread_self(), std::memory_order_release);
  accel::VcpuExit exit;
  kvm_run* r = run();
  int ran = 0;
  for (;;) {
    if (split_ != nullptr && id_ == 0) {
      // The PIC's ExtINT (QEMU's kvm_arch_pre_run): KVM_INTERRUPT takes the vector when KVM
      // says the vCPU can take one now, else KVM exits once it can (api.rst,
      // request_interrupt_window). A PIC line rising inside KVM_RUN kicks this vCPU out.
      const SplitIrqchip::Entry entry = split_->EnterGuest(r->ready_for_interrupt_injection != 0);
      if (entry.inject) {
        kvm_interrupt irq{};
        irq.irq = *entry.inject;
        if (::ioctl(fd_.get(), KVM_INTERRUPT, &irq) < 0) {
          Log(LogLevel::kWarn, "KVM_INTERRUPT vector {:#x}: {}", *entry.inject,
              std::strerror(errno));
        }
      }
      r->request_interrupt_window = entry.request_window ? 1 : 0;
    }
    ran = ::ioctl(fd_.get(), KVM_RUN, 0);
    const int run_errno = errno;
    if (split_ != nullptr && id_ == 0) split_->LeaveGuest();
    errno = run_errno;
    if (ran < 0 || split_ == nullptr || !HandleSplitExit(r)) break;
  }
  if (ran < 0) {
    if (errno == EINTR || errno == EAGAIN) {
      exit.reason = ExitReason::kInterrupted;
    } else {
      exit.reason = ExitReason::kInternalError;
      exit.detail = static_cast<uint64_t>(errno);
    }
    return exit;
  }
  exit.detail = r->exit_reason;
  switch (r->exit_reason) {
    case KVM_EXIT_IO:
      exit.reason = ExitReason::kIo;
      exit.is_write = r->io.direction == KVM_EXIT_IO_OUT;
      exit.address = r->io.port;
      exit.size = r->io.size;
      exit.count = r->io.count;
      exit.data = {reinterpret_cast<uint8_t*>(r) + r->io.data_offset,
                   static_cast<size_t>(r->io.size) * r->io.count};
      break;
    case KVM_EXIT_MMIO:
      exit.reason = ExitReason::kMmio;
      exit.is_write = r->mmio.is_write != 0;
      exit.address = r->mmio.phys_addr;
      exit.size = r->mmio.len <= sizeof(r->mmio.data) ? r->mmio.len : sizeof(r->mmio.data);
      exit.data = {r->mmio.data, exit.size};
      break;
    case KVM_EXIT_HLT:
      exit.reason = ExitReason::kHalt;
      break;
    case KVM_EXIT_SHUTDOWN:
      exit.reason = ExitReason::kShutdown;
      break;
    case KVM_EXIT_SYSTEM_EVENT:
      exit.reason = r->system_event.type == KVM_SYSTEM_EVENT_RESET ? ExitReason::kSystemReset
                                                                   : ExitReason::kSystemShutdown;
      exit.detail = r->system_event.type;
      break;
    case KVM_EXIT_INTR:
      exit.reason = ExitReason::kInterrupted;
      break;
    case KVM_EXIT_INTERNAL_ERROR:
      exit.reason = ExitReason::kInternalError;
      exit.detail = r->internal.suberror;
      exit.extra = {reinterpret_cast<const uint64_t*>(r->internal.data),
                    std::min<size_t>(r->internal.ndata, 16)};
      break;
    case KVM_EXIT_FAIL_ENTRY:
      exit.reason = ExitReason::kFailEntry;
      exit.detail = r->fail_entry.hardware_entry_failure_reason;
      break;
    case KVM_EXIT_DEBUG:
      exit.reason = ExitReason::kDebug;
      break;
    default:
      exit.reason = ExitReason::kUnknown;
      break;
  }
  return exit;
}

void KvmVcpu::Kick() {
  // immediate_exit covers the window before the thread enters KVM_RUN; the signal covers
  // a thread already inside it.
  __atomic_store_n(&run()->immediate_exit, 1, __ATOMIC_SEQ_CST);
  pthread_t thread = thread_.load(std::memory_order_acquire);
  if (thread != 0) pthread_kill(thread, KickSignal());
}

void KvmVcpu::ClearKick() { __atomic_store_n(&run()->immediate_exit, 0, __ATOMIC_SEQ_CST); }

Result<accel::Registers> KvmVcpu::GetRegisters() {
  kvm_regs k{};
  if (::ioctl(fd_.get(), KVM_GET_REGS, &k) < 0) {
    return Fail("KVM_GET_REGS failed: {}", std::strerror(errno));
  }
  accel::Registers r;
  r.rax = k.rax, r.rbx = k.rbx, r.rcx = k.rcx, r.rdx = k.rdx;
  r.rsi = k.rsi, r.rdi = k.rdi, r.rsp = k.rsp, r.rbp = k.rbp;
  r.r8 = k.r8, r.r9 = k.r9, r.r10 = k.r10, r.r11 = k.r11;
  r.r12 = k.r12, r.r13 = k.r13, r.r14 = k.r14, r.r15 = k.r15;
  r.rip = k.rip, r.rflags = k.rflags;
  return r;
}

Status KvmVcpu::SetRegisters(const accel::Registers& r) {
  kvm_regs k{};
  k.rax = r.rax, k.rbx = r.rbx, k.rcx = r.rcx, k.rdx = r.rdx;
  k.rsi = r.rsi, k.rdi = r.rdi, k.rsp = r.rsp, k.rbp = r.rbp;
  k.r8 = r.r8, k.r9 = r.r9, k.r10 = r.r10, k.r11 = r.r11;
  k.r12 = r.r12, k.r13 = r.r13, k.r14 = r.r14, k.r15 = r.r15;
  k.rip = r.rip, k.rflags = r.rflags;
  if (::ioctl(fd_.get(), KVM_SET_REGS, &k) < 0) {
    return Fail("KVM_SET_REGS failed: {}", std::strerror(errno));
  }
  return {};
}

Result<accel::SpecialRegisters> KvmVcpu::GetSpecialRegisters() {
  kvm_sregs k{};
  if (::ioctl(fd_.get(), KVM_GET_SREGS, &k) < 0) {
    return Fail("KVM_GET_SREGS failed: {}", std::strerror(errno));
  }
  accel::SpecialRegisters s;
  s.cs = FromKvm(k.cs), s.ds = FromKvm(k.ds), s.es = FromKvm(k.es), s.fs = FromKvm(k.fs);
  s.gs = FromKvm(k.gs), s.ss = FromKvm(k.ss), s.tr = FromKvm(k.tr), s.ldt = FromKvm(k.ldt);
  s.gdt = {k.gdt.base, k.gdt.limit};
  s.idt = {k.idt.base, k.idt.limit};
  s.cr0 = k.cr0, s.cr2 = k.cr2, s.cr3 = k.cr3, s.cr4 = k.cr4, s.cr8 = k.cr8;
  s.efer = k.efer, s.apic_base = k.apic_base;
  return s;
}

Status KvmVcpu::SetSpecialRegisters(const accel::SpecialRegisters& s) {
  // Read first so fields we do not model (the pending-interrupt bitmap) keep their values.
  kvm_sregs k{};
  if (::ioctl(fd_.get(), KVM_GET_SREGS, &k) < 0) {
    return Fail("KVM_GET_SREGS failed: {}", std::strerror(errno));
  }
  k.cs = ToKvm(s.cs), k.ds = ToKvm(s.ds), k.es = ToKvm(s.es), k.fs = ToKvm(s.fs);
  k.gs = ToKvm(s.gs), k.ss = ToKvm(s.ss), k.tr = ToKvm(s.tr), k.ldt = ToKvm(s.ldt);
  k.gdt.base = s.gdt.base, k.gdt.limit = s.gdt.limit;
  k.idt.base = s.idt.base, k.idt.limit = s.idt.limit;
  k.cr0 = s.cr0, k.cr2 = s.cr2, k.cr3 = s.cr3, k.cr4 = s.cr4, k.cr8 = s.cr8;
  k.efer = s.efer;
  if (s.apic_base != 0) k.apic_base = s.apic_base;
  if (::ioctl(fd_.get(), KVM_SET_SREGS, &k) < 0) {
    return Fail("KVM_SET_SREGS failed: {}", std::strerror(errno));
  }
  return {};
}

Status KvmVcpu::SetCpuid(std::span<const accel::CpuidEntry> entries) {
  if (entries.size() > kvm_abi::kMaxCpuidEntries) {
    return Fail("CPUID table has {} entries, KVM takes at most {}", entries.size(),
                kvm_abi::kMaxCpuidEntries);
  }
  std::vector<uint8_t> buffer(sizeof(kvm_abi::Cpuid2Header) +
                              entries.size() * sizeof(kvm_cpuid_entry2));
  auto* header = reinterpret_cast<kvm_abi::Cpuid2Header*>(buffer.data());
  header->nent = static_cast<uint32_t>(entries.size());
  auto* raw = reinterpret_cast<kvm_cpuid_entry2*>(buffer.data() + sizeof(kvm_abi::Cpuid2Header));
  for (size_t i = 0; i < entries.size(); ++i) {
    raw[i] = {};
    raw[i].function = entries[i].function;
    raw[i].index = entries[i].index;
    raw[i].flags = entries[i].flags;
    raw[i].eax = entries[i].eax;
    raw[i].ebx = entries[i].ebx;
    raw[i].ecx = entries[i].ecx;
    raw[i].edx = entries[i].edx;
  }
  if (::ioctl(fd_.get(), kvm_abi::kSetCpuid2, buffer.data()) < 0) {
    return Fail("KVM_SET_CPUID2 on vCPU {} failed: {}", id_, std::strerror(errno));
  }
  return {};
}

Status KvmVcpu::SetMsrs(std::span<const accel::MsrEntry> msrs) {
  std::vector<uint8_t> buffer(sizeof(kvm_abi::MsrsHeader) + msrs.size() * sizeof(kvm_msr_entry));
  auto* header = reinterpret_cast<kvm_abi::MsrsHeader*>(buffer.data());
  header->nmsrs = static_cast<uint32_t>(msrs.size());
  auto* raw = reinterpret_cast<kvm_msr_entry*>(buffer.data() + sizeof(kvm_abi::MsrsHeader));
  for (size_t i = 0; i < msrs.size(); ++i) {
    raw[i] = {};
    raw[i].index = msrs[i].index;
    raw[i].data = msrs[i].value;
  }
  int set = ::ioctl(fd_.get(), kvm_abi::kSetMsrs, buffer.data());
  if (set < 0) return Fail("KVM_SET_MSRS failed: {}", std::strerror(errno));
  if (static_cast<size_t>(set) != msrs.size()) {
    return Fail("KVM refused MSR {:#x} on vCPU {}", msrs[set].index, id_);
  }
  return {};
}

Result<std::vector<accel::MsrEntry>> KvmVcpu::GetMsrs(std::span<const uint32_t> indices) {
  std::vector<uint8_t> buffer(sizeof(kvm_abi::MsrsHeader) + indices.size() * sizeof(kvm_msr_entry));
  auto* header = reinterpret_cast<kvm_abi::MsrsHeader*>(buffer.data());
  header->nmsrs = static_cast<uint32_t>(indices.size());
  auto* raw = reinterpret_cast<kvm_msr_entry*>(buffer.data() + sizeof(kvm_abi::MsrsHeader));
  for (size_t i = 0; i < indices.size(); ++i) raw[i] = {indices[i], 0, 0};
  int got = ::ioctl(fd_.get(), kvm_abi::kGetMsrs, buffer.data());
  if (got < 0) return Fail("KVM_GET_MSRS failed: {}", std::strerror(errno));
  std::vector<accel::MsrEntry> out;
  out.reserve(static_cast<size_t>(got));
  for (int i = 0; i < got; ++i) out.push_back({raw[i].index, raw[i].data});
  return out;
}

Status KvmVcpu::SetupFpu() {
  kvm_fpu fpu{};
  fpu.fcw = 0x37f;     // FNINIT default: all exceptions masked, extended precision
  fpu.mxcsr = 0x1f80;  // all SSE exceptions masked
  if (::ioctl(fd_.get(), KVM_SET_FPU, &fpu) < 0) {
    return Fail("KVM_SET_FPU failed: {}", std::strerror(errno));
  }
  return {};
}

Status KvmVcpu::GetFxsaveImage(std::span<uint8_t, 512> image) {
  std::vector<uint32_t> xsave(kvm_abi::kXsaveSize / 4);
  if (::ioctl(fd_.get(), kvm_abi::kGetXsave, xsave.data()) < 0) {
    return Fail("KVM_GET_XSAVE failed: {}", std::strerror(errno));
  }
  std::memcpy(image.data(), xsave.data(), image.size());
  return {};
}

Status KvmVcpu::SetFxsaveImage(std::span<const uint8_t, 512> image) {
  std::vector<uint32_t> xsave(kvm_abi::kXsaveSize / 4);
  if (::ioctl(fd_.get(), kvm_abi::kGetXsave, xsave.data()) < 0) {
    return Fail("KVM_GET_XSAVE failed: {}", std::strerror(errno));
  }
  std::memcpy(xsave.data(), image.data(), image.size());
  // XSTATE_BV (SDM Vol. 1 13.4.2) at byte 512: x87 and SSE present, or they load as init.
  xsave[512 / 4] |= 3;
  if (::ioctl(fd_.get(), kvm_abi::kSetXsave, xsave.data()) < 0) {
    return Fail("KVM_SET_XSAVE failed: {} (MXCSR {:#x}: reserved bits set?)", std::strerror(errno),
                xsave[6]);
  }
  return {};
}

Status KvmVcpu::SetupLocalApic() {
  kvm_lapic_state lapic{};
  if (::ioctl(fd_.get(), KVM_GET_LAPIC, &lapic) < 0) {
    return Fail("KVM_GET_LAPIC failed: {}", std::strerror(errno));
  }
  // Local vector table entries (Intel SDM 10.5.1): delivery mode in bits 8-10.
  constexpr size_t kLvtLint0 = 0x350, kLvtLint1 = 0x360;
  constexpr uint32_t kModeExtInt = 7u << 8, kModeNmi = 4u << 8, kModeMask = 7u << 8;
  auto update = [&](size_t offset, uint32_t mode) {
    uint32_t value;
    std::memcpy(&value, lapic.regs + offset, 4);
    value = (value & ~kModeMask) | mode;
    std::memcpy(lapic.regs + offset, &value, 4);
  };
  update(kLvtLint0, kModeExtInt);
  update(kLvtLint1, kModeNmi);
  if (::ioctl(fd_.get(), KVM_SET_LAPIC, &lapic) < 0) {
    return Fail("KVM_SET_LAPIC failed: {}", std::strerror(errno));
  }
  return {};
}

std::optional<uint64_t> KvmVcpu::TranslateAddress(uint64_t linear) {
  kvm_translation t{};
  t.linear_address = linear;
  if (::ioctl(fd_.get(), KVM_TRANSLATE, &t) < 0 || !t.valid) return std::nullopt;
  return t.physical_address;
}

}  // namespace vireo::kvm
