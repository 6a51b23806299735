// The software CPU behind the accelerator interface: exits and their completion (IN, MMIO
// reads replayed into the instruction, read-modify-write on MMIO, REP strings one access per
// exit), ioeventfds, HLT waits woken by a kick or an interrupt, interrupt delivery honouring
// the STI shadow, NMIs, triple fault, the dirty log, MSRs and CPUID through the VM's table.
// Guests are hand-assembled 64-bit code started exactly as the VMM starts a Linux kernel.
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "accel/emu/emu_accelerator.h"
#include "accel/emu/emu_vcpu.h"
#include "arch/x86/boot_cpu.h"
#include "arch/x86/cpuid.h"
#include "arch/x86/layout.h"
#include "base/unique_fd.h"

namespace vireo::emu {
namespace {

using accel::ExitReason;
using accel::VcpuExit;

constexpr uint64_t kCode = 0x100000;
constexpr uint64_t kData = 0x200000;
constexpr uint64_t kMmio = 0xd0000000;  // inside the identity map, outside RAM
constexpr uint64_t kIdt = 0x3000;

class EmuVcpuTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RamRange range{0, 64 << 20};
    memory_.emplace(std::move(*GuestMemory::Create({&range, 1}, {})));
    auto vm = accelerator_.CreateVm(1);
    ASSERT_TRUE(vm) << vm.error().message;
    vm_ = std::move(*vm);
    ASSERT_TRUE(vm_->MapMemory(*memory_));
    auto vcpu = vm_->CreateVcpu(0);
    ASSERT_TRUE(vcpu) << vcpu.error().message;
    vcpu_ = std::move(*vcpu);
    ASSERT_TRUE(x86::WriteBootTables(*memory_, x86::CpuMode::kLong64));
    auto supported = vm_->SupportedCpuid();
    ASSERT_TRUE(supported);
    ASSERT_TRUE(vcpu_->SetCpuid(x86::BuildCpuid(*supported, {1}, 0)));
    ASSERT_TRUE(x86::SetupCpuMsrs(*vcpu_));
    ASSERT_TRUE(vcpu_->SetupFpu());
    x86::EntryState entry;
    entry.rip = kCode;
    ASSERT_TRUE(x86::SetupBootCpu(*vcpu_, entry));
  }

  void Code(std::vector<uint8_t> bytes, uint64_t at = kCode) {
    ASSERT_TRUE(memory_->Write(at, bytes));
  }
  accel::Registers Regs() { return *vcpu_->GetRegisters(); }
  void SetReg(uint64_t accel::Registers::*reg, uint64_t value) {
    accel::Registers r = Regs();
    r.*reg = value;
    ASSERT_TRUE(vcpu_->SetRegisters(r));
  }
  static uint64_t Data(const VcpuExit& exit) {
    uint64_t v = 0;
    std::memcpy(&v, exit.data.data(), exit.data.size());
    return v;
  }
  static void Answer(const VcpuExit& exit, uint64_t value) {
    std::memcpy(exit.data.data(), &value, exit.data.size());
  }
  // A 64-bit interrupt gate for `vector` to `handler` in an IDT at kIdt.
  void Gate(uint8_t vector, uint64_t handler) {
    const uint64_t lo = (handler & 0xffff) | (uint64_t{0x10} << 16) | (uint64_t{0x8e} << 40) |
                        ((handler >> 16 & 0xffff) << 48);
    ASSERT_TRUE(memory_->WriteObj<uint64_t>(kIdt + vector * 16, lo));
    ASSERT_TRUE(memory_->WriteObj<uint64_t>(kIdt + vector * 16 + 8, handler >> 32));
    auto s = *vcpu_->GetSpecialRegisters();
    s.idt = {kIdt, 0xfff};
    ASSERT_TRUE(vcpu_->SetSpecialRegisters(s));
  }

  EmuAccelerator accelerator_;
  std::optional<GuestMemory> memory_;
  std::unique_ptr<accel::Vm> vm_;
  std::unique_ptr<accel::Vcpu> vcpu_;
};

TEST_F(EmuVcpuTest, OutExitsWithItsDataAndInCompletesWithTheHandlersData) {
  // mov al, 0x41; mov dx, 0x3f8; out dx, al; in al, dx; mov bl, al; out 0x80, al
  Code({0xb0, 0x41, 0x66, 0xba, 0xf8, 0x03, 0xee, 0xec, 0x88, 0xc3, 0xe6, 0x80});
  VcpuExit exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_TRUE(exit.is_write);
  EXPECT_EQ(exit.address, 0x3f8u);
  EXPECT_EQ(exit.size, 1u);
  EXPECT_EQ(Data(exit), 0x41u);
  exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_FALSE(exit.is_write);
  Answer(exit, 0x5a);
  exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(exit.address, 0x80u);
  EXPECT_EQ(Data(exit), 0x5au);
  EXPECT_EQ(Regs().rbx & 0xff, 0x5au);
  EXPECT_EQ(Regs().rip, kCode + 12);
}

TEST_F(EmuVcpuTest, MmioReadsCompleteTheInstructionAndReadModifyWriteExitsTwice) {
  // movabs rsi, kMmio; mov eax, [rsi]; add dword [rsi+4], 5; out 0x80, al
  Code({0x48, 0xbe, 0x00, 0x00, 0x00, 0xd0, 0, 0, 0, 0, 0x8b, 0x06, 0x83, 0x46, 0x04, 0x05, 0xe6,
        0x80});
  VcpuExit exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kMmio);
  EXPECT_FALSE(exit.is_write);
  EXPECT_EQ(exit.address, kMmio);
  EXPECT_EQ(exit.size, 4u);
  const uint64_t rip_at_read = Regs().rip;
  EXPECT_EQ(rip_at_read, kCode + 10) << "a read exit leaves RIP on the instruction";
  Answer(exit, 0x11223344);
  exit = vcpu_->Run();
  EXPECT_EQ(Regs().rax, 0x11223344u);
  ASSERT_EQ(exit.reason, ExitReason::kMmio);
  EXPECT_FALSE(exit.is_write);
  EXPECT_EQ(exit.address, kMmio + 4);
  Answer(exit, 0xfffffffb);  // + 5 wraps to 0: ZF and CF set
  exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kMmio);
  EXPECT_TRUE(exit.is_write);
  EXPECT_EQ(exit.address, kMmio + 4);
  EXPECT_EQ(Data(exit), 0u);
  EXPECT_EQ(Regs().rip, kCode + 16) << "a write exit comes after the instruction retired";
  EXPECT_EQ(Regs().rflags & 0x41, 0x41u) << "flags of the completed add (ZF, CF)";
  exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(Data(exit), 0x44u);
}

TEST_F(EmuVcpuTest, RepMovsFromMmioExitsOncePerElement) {
  // movabs rsi, kMmio; mov edi, kData; mov ecx, 3; rep movsb; out 0x80, al
  Code({0x48, 0xbe, 0x00, 0x00, 0x00, 0xd0, 0, 0, 0,    0,    0xbf, 0x00,
        0x00, 0x20, 0x00, 0xb9, 3,    0,    0, 0, 0xf3, 0xa4, 0xe6, 0x80});
  for (int i = 0; i < 3; ++i) {
    VcpuExit exit = vcpu_->Run();
    ASSERT_EQ(exit.reason, ExitReason::kMmio) << i;
    EXPECT_FALSE(exit.is_write);
    EXPECT_EQ(exit.address, kMmio + i);
    Answer(exit, 0xa0 + i);
  }
  VcpuExit exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  uint8_t copied[3] = {};
  ASSERT_TRUE(memory_->Read(kData, copied));
  EXPECT_EQ(copied[0], 0xa0);
  EXPECT_EQ(copied[1], 0xa1);
  EXPECT_EQ(copied[2], 0xa2);
  EXPECT_EQ(Regs().rcx, 0u);
}

TEST_F(EmuVcpuTest, WriteToAnIoEventSignalsItsEventFdWithoutAnExit) {
  UniqueFd fd(::eventfd(0, EFD_NONBLOCK));
  ASSERT_TRUE(fd.valid());
  ASSERT_TRUE(vm_->AddIoEvent({.mmio = true, .address = kMmio + 0x1000, .length = 4}, fd.get()));
  // movabs rsi, kMmio; mov dword [rsi+0x1000], 1; out 0x80, al
  Code({0x48, 0xbe, 0x00, 0x00, 0x00, 0xd0, 0, 0, 0, 0,    0xc7,
        0x86, 0x00, 0x10, 0x00, 0x00, 1,    0, 0, 0, 0xe6, 0x80});
  VcpuExit exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  uint64_t count = 0;
  ASSERT_EQ(::read(fd.get(), &count, sizeof(count)), 8);
  EXPECT_EQ(count, 1u);
  ASSERT_TRUE(vm_->RemoveIoEvent({.mmio = true, .address = kMmio + 0x1000, .length = 4}, fd.get()));
  EXPECT_FALSE(
      vm_->RemoveIoEvent({.mmio = true, .address = kMmio + 0x1000, .length = 4}, fd.get()));
}

TEST_F(EmuVcpuTest, KickBeforeRunReturnsAtOnceAndClearKickResumes) {
  Code({0xe6, 0x80});  // out 0x80, al
  vcpu_->Kick();
  EXPECT_EQ(vcpu_->Run().reason, ExitReason::kInterrupted);
  EXPECT_EQ(Regs().rip, kCode);
  vcpu_->ClearKick();
  EXPECT_EQ(vcpu_->Run().reason, ExitReason::kIo);
}

TEST_F(EmuVcpuTest, KickAfterAnMmioReadExitFinishesTheInstructionBeforeStopping) {
  // movabs rsi, kMmio; mov eax, [rsi]; out 0x80, al
  Code({0x48, 0xbe, 0x00, 0x00, 0x00, 0xd0, 0, 0, 0, 0, 0x8b, 0x06, 0xe6, 0x80});
  VcpuExit exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kMmio);
  Answer(exit, 0x55667788);
  // A pause kicks the vCPU while the read's answer is on its way back: the instruction the
  // answer belongs to retires first, so the parked vCPU's state is whole and can be saved.
  vcpu_->Kick();
  EXPECT_EQ(vcpu_->Run().reason, ExitReason::kInterrupted);
  EXPECT_EQ(Regs().rax, 0x55667788u);
  EXPECT_EQ(Regs().rip, kCode + 12);
  auto saved = vcpu_->SaveState();
  EXPECT_TRUE(saved) << saved.error().message;
  vcpu_->ClearKick();
  EXPECT_EQ(vcpu_->Run().reason, ExitReason::kIo);
}

TEST_F(EmuVcpuTest, HaltWaitsUntilKicked) {
  Code({0xf4, 0xe6, 0x80});  // hlt; out 0x80, al
  std::thread kicker([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    vcpu_->Kick();
  });
  const auto start = std::chrono::steady_clock::now();
  VcpuExit exit = vcpu_->Run();
  kicker.join();
  EXPECT_EQ(exit.reason, ExitReason::kInterrupted);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(40));
  EXPECT_EQ(Regs().rip, kCode + 1) << "halted after HLT";
  vcpu_->ClearKick();
  // Still halted: with IF clear, only another kick returns.
  std::thread again([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    vcpu_->Kick();
  });
  EXPECT_EQ(vcpu_->Run().reason, ExitReason::kInterrupted);
  again.join();
}

TEST_F(EmuVcpuTest, InterruptWakesHaltAndRunsItsHandler) {
  Gate(0x20, kCode + 0x1000);
  Code({0xb3, 0x77, 0x48, 0xcf}, kCode + 0x1000);  // mov bl, 0x77; iretq
  Code({0xfb, 0xf4, 0xe6, 0x80});                  // sti; hlt; out 0x80, al
  std::thread injector([this] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    ASSERT_TRUE(vcpu_->InjectInterrupt(0x20));
  });
  VcpuExit exit = vcpu_->Run();
  injector.join();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(Regs().rbx & 0xff, 0x77u);
  EXPECT_EQ(Regs().rip, kCode + 4);
  EXPECT_NE(Regs().rflags & 0x200, 0u) << "IRETQ restored IF";
}

TEST_F(EmuVcpuTest, InterruptWaitsForTheStiShadow) {
  Gate(0x21, kCode + 0x1000);
  // Handler: out 0x80, al (the frame's RIP says where the interrupt hit).
  Code({0xe6, 0x80}, kCode + 0x1000);
  Code({0xfb, 0x90, 0x90, 0xf4});  // sti; nop; nop; hlt
  ASSERT_TRUE(vcpu_->InjectInterrupt(0x21));
  EXPECT_FALSE(vcpu_->InjectInterrupt(0x22)) << "one interrupt waits at a time";
  VcpuExit exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(Regs().rip, kCode + 0x1002);
  const uint64_t rsp = Regs().rsp;
  auto pushed_rip = memory_->ReadObj<uint64_t>(rsp);
  ASSERT_TRUE(pushed_rip);
  EXPECT_EQ(*pushed_rip, kCode + 2) << "taken after the instruction following STI, not before";
}

TEST_F(EmuVcpuTest, NmiIsTakenWithInterruptsOffAndBlockedUntilIret) {
  Gate(2, kCode + 0x1000);
  Code({0xe6, 0x80, 0x48, 0xcf}, kCode + 0x1000);  // out 0x80, al; iretq
  Code({0xf4, 0xf4});                              // hlt; hlt (IF clear)
  ASSERT_TRUE(vcpu_->InjectNmi());
  VcpuExit exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(Regs().rip, kCode + 0x1002);
  ASSERT_TRUE(vcpu_->InjectNmi());  // blocked: the handler has not returned yet
  exit = vcpu_->Run();
  // iretq unblocks, the second NMI runs the handler again.
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(Regs().rip, kCode + 0x1002);
}

TEST_F(EmuVcpuTest, FaultWithNoIdtIsATripleFaultShutdown) {
  Code({0x0f, 0x0b});  // ud2; the boot IDT is empty
  EXPECT_EQ(vcpu_->Run().reason, ExitReason::kShutdown);
}

TEST_F(EmuVcpuTest, ExecutingFromMmioIsAnInternalErrorThatSaysWhy) {
  // movabs rsi, kMmio; jmp rsi
  Code({0x48, 0xbe, 0x00, 0x00, 0x00, 0xd0, 0, 0, 0, 0, 0xff, 0xe6});
  VcpuExit exit = vcpu_->Run();
  ASSERT_EQ(exit.reason, ExitReason::kInternalError);
  ASSERT_NE(exit.description, nullptr);
  EXPECT_NE(std::string(exit.description).find("software CPU"), std::string::npos);
}

TEST_F(EmuVcpuTest, DirtyLogMarksPagesTheGuestWrote) {
  ASSERT_FALSE(vm_->FetchDirtyPages()) << "not started";
  ASSERT_TRUE(vm_->StartDirtyLog());
  // mov edi, kData; mov [rdi], al; mov [rdi+0x3000], al; out 0x80, al
  Code({0xbf, 0x00, 0x00, 0x20, 0x00, 0x88, 0x07, 0x88, 0x87, 0x00, 0x30, 0x00, 0x00, 0xe6, 0x80});
  ASSERT_EQ(vcpu_->Run().reason, ExitReason::kIo);
  auto dirty = vm_->FetchDirtyPages();
  ASSERT_TRUE(dirty);
  ASSERT_EQ(dirty->size(), 1u);
  std::vector<uint64_t> pages;
  for (size_t w = 0; w < (*dirty)[0].size(); ++w) {
    for (int b = 0; b < 64; ++b) {
      if ((*dirty)[0][w] >> b & 1) pages.push_back(w * 64 + b);
    }
  }
  // The stack is not touched; the code page is not written.
  EXPECT_EQ(pages, (std::vector<uint64_t>{kData / 4096, kData / 4096 + 3}));
  auto again = vm_->FetchDirtyPages();
  ASSERT_TRUE(again);
  for (uint64_t word : (*again)[0]) EXPECT_EQ(word, 0u) << "a fetch clears the log";
}

TEST_F(EmuVcpuTest, MsrsRoundTripAndUnknownOnesAreNamed) {
  const accel::MsrEntry lstar{0xc0000082, 0xffffffff81000000ull};
  ASSERT_TRUE(vcpu_->SetMsrs({&lstar, 1}));
  const uint32_t index = 0xc0000082;
  auto got = vcpu_->GetMsrs({&index, 1});
  ASSERT_TRUE(got);
  EXPECT_EQ((*got)[0].value, lstar.value);
  const accel::MsrEntry bogus{0x12345, 1};
  auto status = vcpu_->SetMsrs({&bogus, 1});
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("0x12345"), std::string::npos);
}

// IA32_APIC_BASE through the WRMSR path (SDM 11.12.5): xAPIC -> x2APIC, then the x2APIC
// MSRs answer; x2APIC -> xAPIC, disabled -> x2APIC and EXTD without EN are refused (#GP).
TEST_F(EmuVcpuTest, ApicBaseModeTransitionsGateTheX2ApicMsrs) {
  const uint32_t id_msr = 0x802;
  EXPECT_FALSE(vcpu_->GetMsrs({&id_msr, 1})) << "xAPIC mode: x2APIC MSRs #GP";
  const accel::MsrEntry x2{0x1b, 0xfee00d00};  // BSP | EXTD | EN
  ASSERT_TRUE(vcpu_->SetMsrs({&x2, 1}));
  auto id = vcpu_->GetMsrs({&id_msr, 1});
  ASSERT_TRUE(id);
  EXPECT_EQ((*id)[0].value, 0u);
  const accel::MsrEntry back_to_xapic{0x1b, 0xfee00900};
  EXPECT_FALSE(vcpu_->SetMsrs({&back_to_xapic, 1}));
  const accel::MsrEntry disabled{0x1b, 0xfee00100};
  ASSERT_TRUE(vcpu_->SetMsrs({&disabled, 1}));
  EXPECT_FALSE(vcpu_->GetMsrs({&id_msr, 1}));
  EXPECT_FALSE(vcpu_->SetMsrs({&x2, 1})) << "disabled -> x2APIC skips xAPIC";
  const accel::MsrEntry extd_only{0x1b, 0xfee00500};
  EXPECT_FALSE(vcpu_->SetMsrs({&extd_only, 1}));
  ASSERT_TRUE(vcpu_->SetMsrs({&back_to_xapic, 1}));
  ASSERT_TRUE(vcpu_->SetMsrs({&x2, 1}));
  // The TSC-deadline MSR exists; CPUID offers both features.
  const uint32_t deadline = 0x6e0;
  EXPECT_TRUE(vcpu_->GetMsrs({&deadline, 1}));
  // mov eax, 1; cpuid; out 0x80, al
  Code({0xb8, 0x01, 0x00, 0x00, 0x00, 0x0f, 0xa2, 0xe6, 0x80});
  ASSERT_EQ(vcpu_->Run().reason, ExitReason::kIo);
  EXPECT_NE(Regs().rcx & (1u << 21), 0u) << "x2APIC offered";
  EXPECT_NE(Regs().rcx & (1u << 24), 0u) << "TSC-deadline offered";
}

TEST_F(EmuVcpuTest, CpuidAnswersFromTheTableTheVmBuilt) {
  // mov eax, 0x80000001; cpuid; out 0x80, al
  Code({0xb8, 0x01, 0x00, 0x00, 0x80, 0x0f, 0xa2, 0xe6, 0x80});
  ASSERT_EQ(vcpu_->Run().reason, ExitReason::kIo);
  EXPECT_NE(Regs().rdx & (1u << 29), 0u) << "long mode offered";
  // leaf 0x40000000: our own signature, so guests do not look for KVM's clock.
  // (Elsewhere: the first code's decodes are cached, and this test writes memory behind the
  // CPU's back without Interpreter::NotifyExternalWrite.)
  Code({0xb8, 0x00, 0x00, 0x00, 0x40, 0x0f, 0xa2, 0xe6, 0x80}, kCode + 0x100);
  SetReg(&accel::Registers::rip, kCode + 0x100);
  ASSERT_EQ(vcpu_->Run().reason, ExitReason::kIo);
  char signature[5] = {};
  const uint32_t ebx = static_cast<uint32_t>(Regs().rbx);
  std::memcpy(signature, &ebx, 4);
  EXPECT_STREQ(signature, "Vire");
}

TEST_F(EmuVcpuTest, SavedStateRestoresIntoAFreshVcpuThatContinuesTheGuest) {
  // mov eax, 7; out 0x80, al; add eax, 1; out 0x80, al
  Code({0xb8, 0x07, 0x00, 0x00, 0x00, 0xe6, 0x80, 0x83, 0xc0, 0x01, 0xe6, 0x80});
  ASSERT_EQ(vcpu_->Run().reason, ExitReason::kIo);
  const accel::MsrEntry lstar{0xc0000082, 0xffffffff81000000ull};
  ASSERT_TRUE(vcpu_->SetMsrs({&lstar, 1}));
  auto saved = vcpu_->SaveState();
  ASSERT_TRUE(saved) << saved.error().message;
  EXPECT_EQ(saved->regs.rax, 7u);
  EXPECT_EQ(saved->xsave.size(), 4096u);
  // A second VM over the same memory, as a restore on another host would build it.
  auto vm = accelerator_.CreateVm(1);
  ASSERT_TRUE(vm);
  ASSERT_TRUE((*vm)->MapMemory(*memory_));
  auto fresh = (*vm)->CreateVcpu(0);
  ASSERT_TRUE(fresh);
  accel::VcpuSavedState from_kvm = *saved;
  from_kvm.msrs.push_back({0xc0010117, 1});  // an MSR only KVM keeps: skipped, not fatal
  ASSERT_TRUE((*fresh)->RestoreState(from_kvm));
  VcpuExit exit = (*fresh)->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(Data(exit), 8u) << "the restored vCPU continues after the saved instruction";
  const uint32_t index = 0xc0000082;
  EXPECT_EQ((*(*fresh)->GetMsrs({&index, 1}))[0].value, lstar.value);
  auto resaved = (*fresh)->SaveState();
  ASSERT_TRUE(resaved);
  EXPECT_EQ(resaved->sregs.cr3, saved->sregs.cr3);
  EXPECT_EQ(resaved->xsave, saved->xsave);
  // The local APIC's page (KVM's layout) comes back as it went.
  ASSERT_EQ(saved->lapic.size(), 1024u);
  EXPECT_EQ(resaved->lapic, saved->lapic);
  accel::VcpuSavedState other_id = *saved;
  other_id.lapic[0x23] = 5;  // APIC ID 5 for vCPU 0
  auto refused = (*fresh)->RestoreState(other_id);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("APIC ID"), std::string::npos) << refused.error().message;
  accel::VcpuSavedState truncated = *saved;
  truncated.xsave.resize(100);
  EXPECT_FALSE((*fresh)->RestoreState(truncated));
}

TEST(EmuAcceleratorTest, VcpuCountsOutsideOneTo254AreRefused) {
  EmuAccelerator accelerator;
  auto none = accelerator.CreateVm(0);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().message, "0 vCPUs: the software CPU runs 1 to 254 vCPUs");
  EXPECT_FALSE(accelerator.CreateVm(255));
  EXPECT_TRUE(accelerator.CreateVm(4));
}

// An AP waits for INIT and a start-up IPI (SDM Vol. 3 9.4.4), then runs in real mode at
// vector << 12: the BSP sends both through its local APIC's ICR, as Linux does.
TEST_F(EmuVcpuTest, ApStartsInRealModeAtTheSipiVectorAfterInit) {
  auto vm = accelerator_.CreateVm(2);
  ASSERT_TRUE(vm);
  ASSERT_TRUE((*vm)->MapMemory(*memory_));
  auto bsp = (*vm)->CreateVcpu(0);
  auto ap = (*vm)->CreateVcpu(1);
  ASSERT_TRUE(bsp && ap);
  auto supported = (*vm)->SupportedCpuid();
  ASSERT_TRUE((*bsp)->SetCpuid(x86::BuildCpuid(*supported, {2}, 0)));
  ASSERT_TRUE((*ap)->SetCpuid(x86::BuildCpuid(*supported, {2}, 1)));
  x86::EntryState entry;
  entry.rip = kCode;
  ASSERT_TRUE(x86::SetupBootCpu(**bsp, entry));
  auto before = (*ap)->SaveState();
  ASSERT_TRUE(before);
  EXPECT_EQ(before->mp_state, accel::MpState::kUninitialized);
  EXPECT_EQ(before->sregs.apic_base & (1u << 8), 0u) << "only vCPU 0 is the BSP";
  // mov eax, ICR high; mov dword [rax], dest 1; mov eax, ICR low; mov dword [rax], INIT
  // assert; mov dword [rax], SIPI vector 8; out 0x81, al.
  Code({0xb8, 0x10, 0x03, 0xe0, 0xfe, 0xc7, 0x00, 0x00, 0x00, 0x00, 0x01, 0xb8, 0x00, 0x03, 0xe0,
        0xfe, 0xc7, 0x00, 0x00, 0x45, 0x00, 0x00, 0xc7, 0x00, 0x08, 0x46, 0x00, 0x00, 0xe6, 0x81});
  // The AP's code at 0x8000: mov al, 0x5a; out 0x80, al.
  Code({0xb0, 0x5a, 0xe6, 0x80}, 0x8000);
  VcpuExit exit = (*bsp)->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(exit.address, 0x81u);
  exit = (*ap)->Run();
  ASSERT_EQ(exit.reason, ExitReason::kIo);
  EXPECT_EQ(exit.address, 0x80u);
  EXPECT_EQ(Data(exit), 0x5au);
  auto sregs = (*ap)->GetSpecialRegisters();
  EXPECT_EQ(sregs->cs.selector, 0x800u);
  EXPECT_EQ(sregs->cs.base, 0x8000u);
  EXPECT_EQ(sregs->cr0 & 1, 0u) << "real mode";
}

}  // namespace
}  // namespace vireo::emu
