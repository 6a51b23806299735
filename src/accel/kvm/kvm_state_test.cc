// Proves the KVM backend's snapshot state: everything saved from a vCPU that has run goes
// into a fresh vCPU of a fresh VM and reads back the same, and the fresh vCPU continues the
// program exactly where the first stopped.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "accel/kvm/kvm_system.h"
#include "arch/x86/layout.h"
#include "devices/irqchip/local_apic.h"

namespace vireo::kvm {
namespace {

using accel::ExitReason;

struct Guest {
  std::unique_ptr<accel::Vm> vm;
  std::optional<GuestMemory> memory;
  std::unique_ptr<accel::Vcpu> vcpu;
};

// mov ax, 0x1234; mov bx, 0x0101; out 0xe0, al; add ax, bx; out 0xe2, al; jmp $
constexpr uint8_t kCode[] = {0xb8, 0x34, 0x12, 0xbb, 0x01, 0x01, 0xe6,
                             0xe0, 0x01, 0xd8, 0xe6, 0xe2, 0xeb, 0xfe};

class KvmStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm on this host";
    auto kvm = KvmAccelerator::Open();
    ASSERT_TRUE(kvm) << kvm.error().message;
    kvm_ = std::move(*kvm);
  }

  Guest NewGuest() {
    Guest g;
    auto vm = kvm_->CreateVm(1);
    EXPECT_TRUE(vm) << vm.error().message;
    g.vm = std::move(*vm);
    auto memory = GuestMemory::Create(x86::RamLayout(16 << 20), {});
    EXPECT_TRUE(memory);
    g.memory.emplace(std::move(*memory));
    EXPECT_TRUE(g.memory->Write(0x1000, kCode));
    EXPECT_TRUE(g.vm->MapMemory(*g.memory));
    auto vcpu = g.vm->CreateVcpu(0);
    EXPECT_TRUE(vcpu) << vcpu.error().message;
    g.vcpu = std::move(*vcpu);
    return g;
  }

  std::unique_ptr<KvmAccelerator> kvm_;
};

std::map<uint32_t, uint64_t> MsrMap(const std::vector<accel::MsrEntry>& msrs) {
  std::map<uint32_t, uint64_t> out;
  for (const auto& m : msrs) out[m.index] = m.value;
  return out;
}

TEST_F(KvmStateTest, VcpuAndVmStateRoundTripIntoAFreshVcpuThatContinues) {
  Guest a = NewGuest();
  auto cpuid = a.vm->SupportedCpuid();
  ASSERT_TRUE(cpuid);
  ASSERT_TRUE(a.vcpu->SetCpuid(*cpuid));
  ASSERT_TRUE(a.vcpu->SetupFpu());
  ASSERT_TRUE(a.vcpu->SetupLocalApic());
  auto sregs = a.vcpu->GetSpecialRegisters();
  ASSERT_TRUE(sregs);
  sregs->cs.base = 0;
  sregs->cs.selector = 0;
  ASSERT_TRUE(a.vcpu->SetSpecialRegisters(*sregs));
  accel::Registers regs;
  regs.rip = 0x1000;
  regs.r15 = 0xfeedface;
  ASSERT_TRUE(a.vcpu->SetRegisters(regs));
  // A distinctive MSR value and PIT/PIC state to carry over.
  ASSERT_TRUE(
      a.vcpu->SetMsrs(std::vector<accel::MsrEntry>{{0xc0000102, 0x1234000}}));  // KERNEL_GS_BASE
  auto exit = a.vcpu->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  ASSERT_EQ(exit.address, 0xe0u);
  ASSERT_EQ(exit.data[0], 0x34);

  auto saved = a.vcpu->SaveState();
  ASSERT_TRUE(saved) << saved.error().message;
  auto vm_saved = a.vm->SaveState();
  ASSERT_TRUE(vm_saved) << vm_saved.error().message;
  EXPECT_EQ(saved->xsave.size(), 4096u);
  EXPECT_EQ(saved->lapic.size(), 1024u);
  EXPECT_GT(saved->msrs.size(), 10u);
  EXPECT_FALSE(saved->cpuid.empty());

  Guest b = NewGuest();
  ASSERT_TRUE(b.vm->RestoreState(*vm_saved));
  auto restored = b.vcpu->RestoreState(*saved);
  ASSERT_TRUE(restored) << restored.error().message;
  auto again = b.vcpu->SaveState();
  ASSERT_TRUE(again) << again.error().message;

  EXPECT_EQ(again->regs.rip, saved->regs.rip);
  EXPECT_EQ(again->regs.rax, saved->regs.rax);
  EXPECT_EQ(again->regs.r15, 0xfeedfaceu);
  EXPECT_EQ(again->sregs.cs.selector, saved->sregs.cs.selector);
  EXPECT_EQ(again->sregs.cr0, saved->sregs.cr0);
  EXPECT_EQ(again->sregs.efer, saved->sregs.efer);
  EXPECT_EQ(again->xsave, saved->xsave);
  ASSERT_EQ(again->xcrs.size(), saved->xcrs.size());
  for (size_t i = 0; i < saved->xcrs.size(); ++i)
    EXPECT_EQ(again->xcrs[i].value, saved->xcrs[i].value);
  EXPECT_EQ(again->mp_state, saved->mp_state);
  EXPECT_EQ(again->debug.dr7, saved->debug.dr7);
  EXPECT_EQ(again->cpuid.size(), saved->cpuid.size());
  // The LAPIC page, but for the timer's current count (0x390), which runs.
  auto lapic_a = saved->lapic, lapic_b = again->lapic;
  std::memset(&lapic_a[0x390], 0, 4);
  std::memset(&lapic_b[0x390], 0, 4);
  EXPECT_EQ(lapic_a, lapic_b);
  // Every MSR, but for the time stamp counter, which runs.
  auto msrs_a = MsrMap(saved->msrs), msrs_b = MsrMap(again->msrs);
  EXPECT_EQ(msrs_b[0xc0000102], 0x1234000u);
  for (const auto& [index, value] : msrs_a) {
    if (index == 0x10 /* IA32_TSC */) continue;
    EXPECT_EQ(msrs_b[index], value) << "MSR " << std::hex << index;
  }
  auto vm_again = b.vm->SaveState();
  ASSERT_TRUE(vm_again);
  EXPECT_EQ(vm_again->pic_master.imr, vm_saved->pic_master.imr);
  EXPECT_EQ(vm_again->pic_master.irq_base, vm_saved->pic_master.irq_base);
  EXPECT_EQ(vm_again->ioapic.redirection, vm_saved->ioapic.redirection);
  EXPECT_EQ(vm_again->pit.channels[0].mode, vm_saved->pit.channels[0].mode);
  EXPECT_EQ(vm_again->pit.channels[0].count, vm_saved->pit.channels[0].count);
  EXPECT_GE(vm_again->clock_ns, vm_saved->clock_ns);

  // The fresh vCPU continues the program: add ax, bx; out 0xe2, al -> 0x34 + 0x01.
  exit = b.vcpu->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(exit.address, 0xe2u);
  EXPECT_EQ(exit.data[0], 0x35);
}

uint32_t Reg(const std::vector<uint8_t>& page, uint32_t offset) {
  uint32_t v;
  std::memcpy(&v, &page[offset], 4);
  return v;
}
void SetReg(std::vector<uint8_t>& page, uint32_t offset, uint32_t v) {
  std::memcpy(&page[offset], &v, 4);
}

// The software CPU's local APIC takes KVM's KVM_GET_LAPIC page as it is, and its own page
// goes back into KVM unchanged: the two accelerators' snapshots carry the same LAPIC.
TEST_F(KvmStateTest, KvmLapicPageDecodesIntoTheSoftwareApicAndBack) {
  using L = irqchip::LocalApic;
  Guest g = NewGuest();
  auto cpuid = g.vm->SupportedCpuid();
  ASSERT_TRUE(cpuid);
  ASSERT_TRUE(g.vcpu->SetCpuid(*cpuid));
  ASSERT_TRUE(g.vcpu->SetupLocalApic());  // LINT0 ExtINT, LINT1 NMI, as at boot
  auto saved = g.vcpu->SaveState();
  ASSERT_TRUE(saved) << saved.error().message;
  std::vector<uint8_t>& page = saved->lapic;
  ASSERT_EQ(page.size(), L::kPageSize);
  SetReg(page, L::kSvr, 0x1ff);
  SetReg(page, L::kTpr, 0x30);
  SetReg(page, L::kLdr, 0x01000000);
  SetReg(page, L::kIcrHigh, 0x03000000);
  SetReg(page, L::kLvtError, 0xfe);
  SetReg(page, L::kLvtTimer, 0x40 | (1u << 17));  // periodic, vector 0x40
  SetReg(page, L::kTimerDivide, 0x3);             // divide by 16
  SetReg(page, L::kTimerInitial, 100'000'000);    // 1.6 s: still counting when read back
  SetReg(page, L::kIrr + 0x20, 1u << (0x55 - 64));
  SetReg(page, L::kIsr + 0x30, 1u << (0x60 - 96));
  SetReg(page, L::kTmr + 0x30, 1u << (0x60 - 96));
  ASSERT_TRUE(g.vcpu->RestoreState(*saved));
  auto from_kvm = g.vcpu->SaveState();
  ASSERT_TRUE(from_kvm) << from_kvm.error().message;
  const std::vector<uint8_t>& kvm_page = from_kvm->lapic;

  irqchip::ManualClock clock;
  L apic(0, clock, {});
  auto decoded = apic.RestoreState(kvm_page);
  ASSERT_TRUE(decoded) << decoded.error().message;
  // PPR is derived from TPR and ISR by each side (KVM updates its copy lazily).
  const uint32_t carried[] = {
      L::kId,       L::kTpr,      L::kLdr,          L::kDfr,          L::kSvr,        L::kEsr,
      L::kIcrLow,   L::kIcrHigh,  L::kLvtTimer,     L::kLvtThermal,   L::kLvtPerf,    L::kLvtLint0,
      L::kLvtLint1, L::kLvtError, L::kTimerInitial, L::kTimerCurrent, L::kTimerDivide};
  for (uint32_t offset : carried) {
    EXPECT_EQ(apic.Read(offset), Reg(kvm_page, offset)) << "register " << std::hex << offset;
  }
  for (uint32_t i = 0; i < 8; ++i) {
    for (uint32_t bank : {L::kIsr, L::kTmr, L::kIrr}) {
      EXPECT_EQ(apic.Read(bank + 16 * i), Reg(kvm_page, bank + 16 * i))
          << "register " << std::hex << bank + 16 * i;
    }
  }
  EXPECT_EQ(apic.lvt_lint0(), 0x700u);
  EXPECT_GT(apic.Read(L::kTimerCurrent), 0u);
  // 0x60 in service (level) keeps 0x55 waiting.
  EXPECT_EQ(apic.PendingVector(), -1);

  // Back: the software APIC's page into KVM reads back the same registers.
  std::vector<uint8_t> ours(L::kPageSize);
  apic.SaveState(std::span<uint8_t, L::kPageSize>(ours));
  Guest h = NewGuest();
  saved->lapic = ours;
  ASSERT_TRUE(h.vcpu->RestoreState(*saved));
  auto back = h.vcpu->SaveState();
  ASSERT_TRUE(back);
  for (uint32_t offset : carried) {
    if (offset == L::kTimerCurrent) continue;  // runs in KVM
    EXPECT_EQ(Reg(back->lapic, offset), Reg(kvm_page, offset)) << "register " << std::hex << offset;
  }
  for (uint32_t offset = L::kIsr; offset < L::kIrr + 0x80; offset += 16) {
    EXPECT_EQ(Reg(back->lapic, offset), Reg(kvm_page, offset)) << "register " << std::hex << offset;
  }
  // KVM's timer resumes from the current count our page gave it, not from the initial one.
  EXPECT_LE(Reg(back->lapic, L::kTimerCurrent), Reg(ours, L::kTimerCurrent));
  EXPECT_GT(Reg(back->lapic, L::kTimerCurrent), 0u);
}

TEST_F(KvmStateTest, RestoreRefusesMalformedState) {
  Guest g = NewGuest();
  accel::VcpuSavedState bad;
  bad.xsave.resize(100);
  bad.lapic.resize(1024);
  auto status = g.vcpu->RestoreState(bad);
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("XSAVE"), std::string::npos) << status.error().message;
}

}  // namespace
}  // namespace vireo::kvm
