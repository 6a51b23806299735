// Proves the KVM backend against the host's /dev/kvm with tiny real-mode programs.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <span>
#include <thread>

#include "accel/kvm/kvm_system.h"
#include "arch/x86/layout.h"

namespace vireo::kvm {
namespace {

using accel::ExitReason;

class KvmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm on this host";
    auto kvm = KvmAccelerator::Open();
    ASSERT_TRUE(kvm) << kvm.error().message;
    kvm_ = std::move(*kvm);
    auto vm = kvm_->CreateVm(1);
    ASSERT_TRUE(vm) << vm.error().message;
    vm_ = std::move(*vm);
    auto memory = GuestMemory::Create(x86::RamLayout(16 << 20), {});
    ASSERT_TRUE(memory);
    memory_.emplace(std::move(*memory));
    ASSERT_TRUE(vm_->MapMemory(*memory_));
    auto vcpu = vm_->CreateVcpu(0);
    ASSERT_TRUE(vcpu) << vcpu.error().message;
    vcpu_ = std::move(*vcpu);
  }

  // Real mode, CS base 0, IP 0x1000.
  void LoadRealModeCode(std::span<const uint8_t> code) {
    ASSERT_TRUE(memory_->Write(0x1000, code));
    auto sregs = vcpu_->GetSpecialRegisters();
    ASSERT_TRUE(sregs);
    sregs->cs.base = 0;
    sregs->cs.selector = 0;
    ASSERT_TRUE(vcpu_->SetSpecialRegisters(*sregs));
    accel::Registers regs;
    regs.rip = 0x1000;
    ASSERT_TRUE(vcpu_->SetRegisters(regs));
  }

  std::unique_ptr<KvmAccelerator> kvm_;
  std::unique_ptr<accel::Vm> vm_;
  std::optional<GuestMemory> memory_;
  std::unique_ptr<accel::Vcpu> vcpu_;
};

TEST_F(KvmTest, OutInstructionExitsWithPortAndData) {
  // Ports 0xe0-0xe2 are unclaimed by KVM's in-kernel devices (the PIT owns 0x40-0x43).
  // No trailing HLT: with the in-kernel irqchip it would block in the kernel.
  // mov al, 0x5a; out 0xe0, al; in al, 0xe1; out 0xe2, al; jmp $
  const uint8_t code[] = {0xb0, 0x5a, 0xe6, 0xe0, 0xe4, 0xe1, 0xe6, 0xe2, 0xeb, 0xfe};
  LoadRealModeCode(code);
  auto exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_TRUE(exit.is_write);
  EXPECT_EQ(exit.address, 0xe0u);
  ASSERT_EQ(exit.data.size(), 1u);
  EXPECT_EQ(exit.data[0], 0x5a);
  // The IN: the handler's data is what the guest sees.
  exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_FALSE(exit.is_write);
  EXPECT_EQ(exit.address, 0xe1u);
  exit.data[0] = 0x77;
  exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(exit.address, 0xe2u);
  EXPECT_EQ(exit.data[0], 0x77);
}

TEST_F(KvmTest, AccessOutsideRamIsAnMmioExit) {
  // A load from 0x20000000, outside the 16 MiB of RAM, with a 32-bit address override.
  // mov eax, 0x20000000 ; mov bl, [eax] ; jmp $
  const uint8_t code[] = {0x66, 0xb8, 0x00, 0x00, 0x00, 0x20, 0x67, 0x8a, 0x18, 0xeb, 0xfe};
  LoadRealModeCode(code);
  // Real mode limits segments to 64 KiB, so give DS a flat 4 GiB limit (unreal mode).
  auto sregs = vcpu_->GetSpecialRegisters();
  ASSERT_TRUE(sregs);
  sregs->ds.limit = 0xffffffff;
  sregs->ds.g = true;
  ASSERT_TRUE(vcpu_->SetSpecialRegisters(*sregs));
  auto exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kMmio);
  EXPECT_FALSE(exit.is_write);
  EXPECT_EQ(exit.address, 0x20000000u);
  EXPECT_EQ(exit.size, 1u);
}

TEST_F(KvmTest, KickInterruptsARunningVcpu) {
  const uint8_t spin[] = {0xeb, 0xfe};  // jmp $
  LoadRealModeCode(spin);
  std::thread kicker([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    vcpu_->Kick();
  });
  auto exit = vcpu_->Run();
  kicker.join();
  EXPECT_EQ(exit.reason, ExitReason::kInterrupted);
  // A pending kick makes the next Run() return at once; ClearKick() lets it run again.
  exit = vcpu_->Run();
  EXPECT_EQ(exit.reason, ExitReason::kInterrupted);
  vcpu_->ClearKick();
}

TEST_F(KvmTest, SupportedCpuidIsReadableAndSettable) {
  auto cpuid = vm_->SupportedCpuid();
  ASSERT_TRUE(cpuid) << cpuid.error().message;
  ASSERT_FALSE(cpuid->empty());
  EXPECT_EQ((*cpuid)[0].function, 0u);
  EXPECT_TRUE(vcpu_->SetCpuid(*cpuid)) << "KVM_SET_CPUID2 must accept what KVM supports";
}

TEST_F(KvmTest, MsrsRoundTrip) {
  constexpr uint32_t kSysenterCs = 0x174;
  const accel::MsrEntry msr{kSysenterCs, 0x10};
  ASSERT_TRUE(vcpu_->SetMsrs({&msr, 1}));
  auto got = vcpu_->GetMsrs(std::array<uint32_t, 1>{kSysenterCs});
  ASSERT_TRUE(got) << got.error().message;
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].value, 0x10u);
}

// Reads an eventfd's counter without blocking; 0 when it was never signalled.
uint64_t DrainEventFd(int fd) {
  uint64_t count = 0;
  if (::read(fd, &count, sizeof(count)) != sizeof(count)) return 0;
  return count;
}

TEST_F(KvmTest, PortIoEventSignalsWithoutAnExit) {
  UniqueFd event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_TRUE(event);
  accel::Vm::IoEvent io{.mmio = false, .address = 0xe4, .length = 1, .datamatch = std::nullopt};
  ASSERT_TRUE(vm_->AddIoEvent(io, event.get()));
  // mov al, 7; out 0xe4, al; out 0xe4, al; out 0xe0, al; jmp $
  const uint8_t code[] = {0xb0, 0x07, 0xe6, 0xe4, 0xe6, 0xe4, 0xe6, 0xe0, 0xeb, 0xfe};
  LoadRealModeCode(code);
  auto exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(exit.address, 0xe0u) << "writes to the ioeventfd port must not exit";
  EXPECT_EQ(DrainEventFd(event.get()), 2u);
  EXPECT_TRUE(vm_->RemoveIoEvent(io, event.get()));
}

TEST_F(KvmTest, MmioIoEventWithDatamatchOnlyFiresOnItsValue) {
  UniqueFd event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_TRUE(event);
  accel::Vm::IoEvent io{.mmio = true, .address = 0x20000000, .length = 2, .datamatch = 3};
  ASSERT_TRUE(vm_->AddIoEvent(io, event.get()));
  // mov ebx, 0x20000000; mov ax, 3; mov [ebx], ax; mov ax, 4; mov [ebx], ax; jmp $
  const uint8_t code[] = {0x66, 0xbb, 0x00, 0x00, 0x00, 0x20, 0xb8, 0x03, 0x00, 0x67,
                          0x89, 0x03, 0xb8, 0x04, 0x00, 0x67, 0x89, 0x03, 0xeb, 0xfe};
  LoadRealModeCode(code);
  auto sregs = vcpu_->GetSpecialRegisters();
  ASSERT_TRUE(sregs);
  sregs->ds.limit = 0xffffffff;
  sregs->ds.g = true;
  ASSERT_TRUE(vcpu_->SetSpecialRegisters(*sregs));
  auto exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kMmio) << "the non-matching write is an ordinary exit";
  EXPECT_TRUE(exit.is_write);
  EXPECT_EQ(exit.data[0], 4);
  EXPECT_EQ(DrainEventFd(event.get()), 1u) << "the matching write signalled the eventfd";
}

TEST_F(KvmTest, IrqFdCanBeAttachedAndDetached) {
  UniqueFd event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_TRUE(event);
  ASSERT_TRUE(vm_->AddIrqFd(5, event.get()));
  EXPECT_FALSE(vm_->AddIrqFd(5, event.get())) << "KVM refuses the same eventfd twice";
  EXPECT_TRUE(vm_->RemoveIrqFd(5, event.get()));
}

TEST_F(KvmTest, MsiRoutesGetFreshGsisThatTakeAnIrqFd) {
  auto first = vm_->AddMsiRoute(0xfee00000, 0x41);
  auto second = vm_->AddMsiRoute(0xfee01000, 0x42);
  ASSERT_TRUE(first) << first.error().message;
  ASSERT_TRUE(second) << second.error().message;
  EXPECT_GE(*first, 24u) << "GSIs 0-23 are the PIC and IOAPIC lines";
  EXPECT_NE(*first, *second);
  UniqueFd event(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  ASSERT_TRUE(vm_->AddIrqFd(*second, event.get()));
  EXPECT_TRUE(vm_->RemoveIrqFd(*second, event.get()));
}

// --irqchip split: the PIC's ports are served by Vireo's model inside Run() (only the unclaimed
// port reaches the caller, carrying the IMR read back from it), and the models' state goes
// through a snapshot into a second split VM, where a guest reads the same IMR.
TEST(KvmSplitIrqchip, PicPortsStayInsideRunAndTheirStateRestores) {
  if (::access("/dev/kvm", R_OK | W_OK) != 0) GTEST_SKIP() << "no usable /dev/kvm on this host";
  auto kvm = KvmAccelerator::Open();
  ASSERT_TRUE(kvm) << kvm.error().message;
  if (auto split = (*kvm)->EnableSplitIrqchip(); !split) GTEST_SKIP() << split.error().message;
  auto memory = GuestMemory::Create(x86::RamLayout(16 << 20), {});
  ASSERT_TRUE(memory);
  // Runs `code` in real mode at 0x1000 on a new split VM (restored from `state` if given)
  // and returns the byte it writes to port 0xe0.
  auto run = [&](std::span<const uint8_t> code, const accel::VmSavedState* state,
                 accel::VmSavedState* saved) -> int {
    auto vm = (*kvm)->CreateVm(1);
    EXPECT_TRUE(vm) << vm.error().message;
    if (!vm) return -1;
    EXPECT_TRUE((*vm)->MapMemory(*memory));
    if (state) {
      EXPECT_TRUE((*vm)->RestoreState(*state));
    }
    auto vcpu = (*vm)->CreateVcpu(0);
    EXPECT_TRUE(vcpu) << vcpu.error().message;
    if (!vcpu) return -1;
    EXPECT_TRUE(memory->Write(0x1000, code));
    auto sregs = (*vcpu)->GetSpecialRegisters();
    sregs->cs.base = 0;
    sregs->cs.selector = 0;
    EXPECT_TRUE((*vcpu)->SetSpecialRegisters(*sregs));
    accel::Registers regs;
    regs.rip = 0x1000;
    EXPECT_TRUE((*vcpu)->SetRegisters(regs));
    accel::VcpuExit exit = (*vcpu)->Run();
    EXPECT_EQ(exit.reason, ExitReason::kIo);
    EXPECT_EQ(exit.address, 0xe0u);
    if (exit.reason != ExitReason::kIo || exit.data.size() != 1) return -1;
    if (saved) {
      auto s = (*vm)->SaveState();
      EXPECT_TRUE(s) << s.error().message;
      if (s) *saved = *s;
    }
    return exit.data[0];
  };
  // mov al, 0xfb; out 0x21, al; in al, 0x21; out 0xe0, al; jmp $
  const uint8_t program[] = {0xb0, 0xfb, 0xe6, 0x21, 0xe4, 0x21, 0xe6, 0xe0, 0xeb, 0xfe};
  accel::VmSavedState saved;
  EXPECT_EQ(run(program, nullptr, &saved), 0xfb);
  EXPECT_EQ(saved.pic_master.imr, 0xfb) << "the model's IMR, as the guest wrote it";
  // in al, 0x21; out 0xe0, al; jmp $ — on a fresh VM (the reset IMR) and on the restored one.
  const uint8_t read_imr[] = {0xe4, 0x21, 0xe6, 0xe0, 0xeb, 0xfe};
  EXPECT_NE(run(read_imr, nullptr, nullptr), 0xfb);
  EXPECT_EQ(run(read_imr, &saved, nullptr), 0xfb);
}

TEST(KvmOpen, MissingDeviceNamesTheFix) {
  auto kvm = KvmAccelerator::Open("/nonexistent/kvm");
  ASSERT_FALSE(kvm);
  EXPECT_NE(kvm.error().message.find("modprobe"), std::string::npos) << kvm.error().message;
}

}  // namespace
}  // namespace vireo::kvm
