// Proves the KVM backend's snapshot state: everything saved from a vCPU that has run goes
// into a fresh vCPU of a fresh VM and reads back the same, and the fresh vCPU continues the
// program exactly where the first stopped.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <map>

#include "accel/kvm/kvm_system.h"
#include "arch/x86/layout.h"

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
