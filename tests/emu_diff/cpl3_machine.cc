#include "cpl3_machine.h"

#include <cstring>

#include "accel/kvm/kvm_system.h"

namespace vireo::emu_diff {
namespace {

constexpr uint64_t kPml4 = 0x1000, kPdpt = 0x2000, kPd = 0x3000, kPt = 0x6000;
constexpr uint64_t kGdt = 0x4000, kTss = 0x5000;
constexpr uint64_t kRamSize = 16 << 20;

// The terminator: mov [kMmioPage], al.
std::array<uint8_t, 9> Terminator() {
  std::array<uint8_t, 9> t{0xa2};
  uint64_t addr = kMmioPage;
  std::memcpy(&t[1], &addr, 8);
  return t;
}

accel::Segment UserSegment(uint16_t selector, bool code) {
  accel::Segment s;
  s.selector = selector;
  s.type = code ? 0xb : 0x3;  // execute/read accessed; read/write accessed
  s.present = true;
  s.dpl = 3;
  s.s = true;
  s.l = code;
  s.db = !code;
  s.g = true;
  s.limit = 0xffffffff;
  return s;
}

accel::Segment NullSegment() {
  accel::Segment s;
  s.unusable = true;
  return s;
}

struct FixedEnvironment : emu::CpuEnvironment {
  void Cpuid(uint32_t, uint32_t, uint32_t out[4]) override {
    out[0] = out[1] = out[2] = out[3] = 0;
  }
  uint64_t ReadTsc() override { return 0; }
};

}  // namespace

Result<std::unique_ptr<Cpl3Machines>> Cpl3Machines::Create() {
  std::unique_ptr<Cpl3Machines> m(new Cpl3Machines());
  auto kvm = VIREO_TRY(kvm::KvmAccelerator::Open());
  m->kvm_ = std::move(kvm);
  m->vm_ = VIREO_TRY(m->kvm_->CreateVm(1));
  RamRange ram{0, kRamSize};
  m->memory_.emplace(VIREO_TRY(GuestMemory::Create({&ram, 1}, {})));
  VIREO_TRY_STATUS(m->vm_->MapMemory(*m->memory_));
  m->vcpu_ = VIREO_TRY(m->vm_->CreateVcpu(0));
  m->kvm_vcpu_ = dynamic_cast<kvm::KvmVcpu*>(m->vcpu_.get());
  if (!m->kvm_vcpu_) return Fail("the KVM accelerator made a vCPU that is not a KvmVcpu");
  auto cpuid = VIREO_TRY(m->vm_->SupportedCpuid());
  VIREO_TRY_STATUS(m->vcpu_->SetCpuid(cpuid));
  VIREO_TRY_STATUS(m->WriteTables());
  m->sregs_ = VIREO_TRY(m->vcpu_->GetSpecialRegisters());
  auto& s = m->sregs_;
  // Linux's user selectors (CS 0x33, SS 0x2b, null data segments): this host's KVM (PVM)
  // runs CPL3 code with exactly those, whatever was set, so MOV r/m, Sreg compares only
  // when both machines start from them.
  s.cs = UserSegment(0x33, true);
  s.ss = UserSegment(0x2b, false);
  s.ds = s.es = s.fs = s.gs = NullSegment();
  s.tr = {};
  s.tr.base = kTss;
  s.tr.limit = 0x67;
  s.tr.selector = 0x40;
  s.tr.type = 11;  // busy 64-bit TSS
  s.tr.present = true;
  s.ldt = {};
  s.ldt.unusable = true;
  s.ldt.type = 2;
  s.gdt = {kGdt, 0x4f};
  s.idt = {0, 0};  // any exception triple-faults: a shutdown exit
  s.cr0 = emu::kCr0Pe | emu::kCr0Pg | emu::kCr0Wp | (1u << 4) /* ET */;
  s.cr3 = kPml4;
  s.cr4 = emu::kCr4Pae | emu::kCr4Osfxsr;
  s.efer = emu::kEferLme | emu::kEferLma | emu::kEferNxe | emu::kEferSce;
  return m;
}

Status Cpl3Machines::WriteTables() {
  const GuestMemory& mem = *memory_;
  VIREO_TRY_STATUS(mem.WriteObj<uint64_t>(kPml4, kPdpt | 7) ? Status{} : Fail("pml4"));
  VIREO_TRY_STATUS(mem.WriteObj<uint64_t>(kPdpt, kPd | 7) ? Status{} : Fail("pdpt"));
  // 0-2 MiB through 4 KiB pages: below 1 MiB supervisor-only, so a stray user write faults
  // instead of corrupting the tables.
  if (!mem.WriteObj<uint64_t>(kPd, kPt | 7)) return Fail("pd");
  for (uint64_t i = 0; i < 512; ++i) {
    if (!mem.WriteObj<uint64_t>(kPt + i * 8, (i << 12) | (i < 256 ? 3 : 7))) return Fail("pt");
  }
  for (uint64_t i = 1; i < kRamSize >> 21; ++i) {
    if (!mem.WriteObj<uint64_t>(kPd + i * 8, (i << 21) | 0x87)) return Fail("pd");
  }
  if (!mem.WriteObj<uint64_t>(kPd + (kMmioPage >> 21) * 8, kMmioPage | 0x87)) return Fail("pd");
  // GDT as Linux lays it out: kernel code/data (0x10, 0x18), user data (0x20 and 0x28),
  // user code (0x30), TSS (0x40, 16 bytes).
  const uint64_t gdt[10] = {0,
                            0,
                            0x00af9b000000ffffull,
                            0x00cf93000000ffffull,
                            0x00cff3000000ffffull,
                            0x00cff3000000ffffull,
                            0x00affb000000ffffull,
                            0,
                            0x0000890000000067ull | (kTss & 0xffffff) << 16,
                            0};
  for (int i = 0; i < 10; ++i) {
    if (!mem.WriteObj<uint64_t>(kGdt + i * 8, gdt[i])) return Fail("gdt");
  }
  return {};
}

void Cpl3Machines::LoadCase(std::span<const uint8_t> code, std::span<const uint8_t> scratch) {
  std::vector<uint8_t> bytes(code.begin(), code.end());
  auto t = Terminator();
  bytes.insert(bytes.end(), t.begin(), t.end());
  memory_->Write(kCodeAddr, bytes);
  memory_->Write(kScratchAddr, scratch);
}

void Cpl3Machines::ReadScratch(CaseResult& result) { memory_->Read(kScratchAddr, result.scratch); }

CaseResult Cpl3Machines::RunKvm(std::span<const uint8_t> code, const CaseState& start,
                                std::span<const uint8_t> scratch) {
  CaseResult result;
  LoadCase(code, scratch);
  if (sregs_dirty_) {
    if (auto st = vcpu_->SetSpecialRegisters(sregs_); !st) {
      result.detail = st.error().message;
      return result;
    }
    sregs_dirty_ = false;
  }
  accel::Registers r;
  const auto& g = start.gpr;
  r.rax = g[0], r.rcx = g[1], r.rdx = g[2], r.rbx = g[3], r.rsp = g[4], r.rbp = g[5];
  r.rsi = g[6], r.rdi = g[7], r.r8 = g[8], r.r9 = g[9], r.r10 = g[10], r.r11 = g[11];
  r.r12 = g[12], r.r13 = g[13], r.r14 = g[14], r.r15 = g[15];
  r.rip = start.rip;
  r.rflags = start.rflags;
  if (!vcpu_->SetRegisters(r)) return result;
  if (auto st = kvm_vcpu_->SetFxsaveImage(start.fx.image); !st) {
    result.detail = st.error().message;
    return result;
  }
  accel::VcpuExit exit = vcpu_->Run();
  if (exit.reason == accel::ExitReason::kShutdown) {
    result.outcome = Outcome::kFaulted;
    sregs_dirty_ = true;
  } else if (exit.reason == accel::ExitReason::kMmio && exit.address == kMmioPage &&
             exit.is_write) {
    result.outcome = Outcome::kCompleted;
  } else {
    result.detail =
        fmt::format("exit {} addr {:#x}", accel::ExitReasonName(exit.reason), exit.address);
    sregs_dirty_ = true;
  }
  auto regs = vcpu_->GetRegisters();
  if (regs) {
    auto& o = result.state.gpr;
    o = {regs->rax, regs->rcx, regs->rdx, regs->rbx, regs->rsp, regs->rbp, regs->rsi, regs->rdi,
         regs->r8,  regs->r9,  regs->r10, regs->r11, regs->r12, regs->r13, regs->r14, regs->r15};
    result.state.rip = regs->rip;
    result.state.rflags = regs->rflags;
  }
  if (!kvm_vcpu_->GetFxsaveImage(result.state.fx.image)) result.detail = "KVM_GET_XSAVE failed";
  ReadScratch(result);
  return result;
}

CaseResult Cpl3Machines::RunEmu(std::span<const uint8_t> code, const CaseState& start,
                                std::span<const uint8_t> scratch) {
  CaseResult result;
  LoadCase(code, scratch);
  emu::CpuState s;
  s.gpr = start.gpr;
  s.rip = start.rip;
  s.flags.Set(start.rflags);
  s.fx = start.fx;
  s.seg[emu::kEs] = sregs_.es;
  s.seg[emu::kCs] = sregs_.cs;
  s.seg[emu::kSs] = sregs_.ss;
  s.seg[emu::kDs] = sregs_.ds;
  s.seg[emu::kFs] = sregs_.fs;
  s.seg[emu::kGs] = sregs_.gs;
  s.gdtr = sregs_.gdt;
  s.idtr = sregs_.idt;
  s.tr = sregs_.tr;
  s.ldtr = sregs_.ldt;
  s.cr0 = sregs_.cr0, s.cr3 = sregs_.cr3, s.cr4 = sregs_.cr4, s.efer = sregs_.efer;
  FixedEnvironment env;
  emu::Interpreter cpu(s, *memory_, env);
  uint64_t retired = 0;
  // Every case is straight-line code plus REP batches: 10000 steps is far beyond any case.
  emu::StepStatus st = cpu.Run(10000, &retired);
  if (st == emu::StepStatus::kMmio && cpu.mmio().is_write && cpu.mmio().address == kMmioPage) {
    result.outcome = Outcome::kCompleted;
  } else if (st == emu::StepStatus::kException) {
    result.outcome = Outcome::kFaulted;
    result.detail = fmt::format("vector {}", cpu.exception().vector);
  } else {
    result.detail = fmt::format("status {}", static_cast<int>(st));
  }
  result.state.gpr = s.gpr;
  result.state.rip = s.rip;
  result.state.rflags = s.flags.Get();
  result.state.fx = s.fx;
  ReadScratch(result);
  return result;
}

}  // namespace vireo::emu_diff
