// Event delivery and system instructions: IDT gates, stack switches (RSP0, IST), error
// codes, #DF and triple fault, IRETQ, SYSCALL/SYSRET, SWAPGS, MSRs, CRs, descriptor tables,
// the STI shadow. Hand-built long-mode tables; expected values from SDM Vol. 3 chapter 6.
#include <gtest/gtest.h>

#include <optional>
#include <vector>

#include "accel/emu/interpreter.h"

namespace vireo::emu {
namespace {

constexpr uint64_t kPml4 = 0x1000, kGdt = 0x3000, kIdt = 0x4000, kTss = 0x5000;
constexpr uint64_t kUserCode = 0x10000, kKernelCode = 0x11000, kUserStack = 0x30000;
constexpr uint64_t kRsp0 = 0x40000, kIst1 = 0x50000;

struct Env : CpuEnvironment {
  void Cpuid(uint32_t, uint32_t, uint32_t out[4]) override {
    out[0] = out[1] = out[2] = out[3] = 0;
  }
  uint64_t ReadTsc() override { return 1000; }
};

class ExceptionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RamRange range{0, 1 << 20};
    memory_.emplace(std::move(*GuestMemory::Create({&range, 1}, {})));
    W(kPml4, 0x2000 | 7);
    W(0x2000, 0x87);  // 1 GiB identity page, user, writable
    // GDT: kernel code 0x08, kernel data 0x10, user data 0x18 (0x1b), user code 0x20 (0x23),
    // TSS 0x28 (16 bytes).
    W(kGdt + 0x08, 0x00af9b000000ffffull);
    W(kGdt + 0x10, 0x00cf93000000ffffull);
    W(kGdt + 0x18, 0x00cff3000000ffffull);
    W(kGdt + 0x20, 0x00affb000000ffffull);
    W(kGdt + 0x28, 0x0000890000000067ull | (kTss << 16));
    W(kTss + 4, kRsp0);
    W(kTss + 0x24, kIst1);
    s_.cr0 = kCr0Pe | kCr0Pg | kCr0Wp;
    s_.cr3 = kPml4;
    s_.cr4 = kCr4Pae;
    s_.efer = kEferLme | kEferLma | kEferNxe | kEferSce;
    s_.gdtr = {kGdt, 0x37};
    s_.idtr = {kIdt, 0xfff};
    s_.tr.base = kTss;
    s_.tr.limit = 0x67;
    s_.tr.selector = 0x28;
    s_.tr.type = 11;
    s_.tr.present = true;
    s_.seg[kCs] = Interpreter::CodeSegmentFrom(0x23, 0x00affb000000ffffull);
    s_.seg[kSs] = Interpreter::CodeSegmentFrom(0x1b, 0x00cff3000000ffffull);
    s_.rip = kUserCode;
    s_.gpr[kRsp] = kUserStack;
    s_.flags.Set(kIf);
    cpu_.emplace(s_, *memory_, env_);
    cpu_->set_deliver_exceptions(true);
  }
  void W(uint64_t a, uint64_t v) { ASSERT_TRUE(memory_->WriteObj<uint64_t>(a, v)); }
  uint64_t R(uint64_t a) { return *memory_->ReadObj<uint64_t>(a); }
  // A 64-bit IDT gate to kernel code 0x08.
  void Gate(int vector, uint64_t target, int dpl, int ist = 0, bool trap = false) {
    const uint64_t lo = (target & 0xffff) | (uint64_t{0x08} << 16) | (uint64_t(ist) << 32) |
                        (uint64_t(trap ? 0xf : 0xe) << 40) | (uint64_t(dpl) << 45) |
                        (uint64_t{1} << 47) | ((target >> 16) & 0xffff) << 48;
    W(kIdt + vector * 16, lo);
    W(kIdt + vector * 16 + 8, target >> 32);
  }
  // Identity-mapped, so `at` is physical too. Patching code under a live interpreter is an
  // external write: it must say so, or the decode cache may run the old bytes.
  void Code(uint64_t at, std::vector<uint8_t> bytes) {
    ASSERT_TRUE(memory_->Write(at, bytes));
    if (cpu_) cpu_->NotifyExternalWrite(at, bytes.size());
  }

  std::optional<GuestMemory> memory_;
  CpuState s_;
  Env env_;
  std::optional<Interpreter> cpu_;
};

TEST_F(ExceptionTest, IntFromUserSwitchesToRsp0AndIretqReturns) {
  Gate(0x80, kKernelCode, 3);
  Code(kUserCode, {0xcd, 0x80, 0x90});
  Code(kKernelCode, {0x48, 0xcf});  // iretq
  const uint64_t flags = s_.flags.Get();
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, kKernelCode);
  EXPECT_EQ(s_.cpl(), 0);
  EXPECT_EQ(s_.seg[kCs].selector, 0x08);
  EXPECT_EQ(s_.seg[kSs].selector, 0);
  EXPECT_FALSE(s_.flags.ifl());  // interrupt gate
  ASSERT_EQ(s_.gpr[kRsp], kRsp0 - 40);
  EXPECT_EQ(R(kRsp0 - 40), kUserCode + 2);  // RIP after INT
  EXPECT_EQ(R(kRsp0 - 32), 0x23u);
  EXPECT_EQ(R(kRsp0 - 24), flags);
  EXPECT_EQ(R(kRsp0 - 16), kUserStack);
  EXPECT_EQ(R(kRsp0 - 8), 0x1bu);
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);  // iretq
  EXPECT_EQ(s_.rip, kUserCode + 2);
  EXPECT_EQ(s_.cpl(), 3);
  EXPECT_EQ(s_.seg[kSs].selector, 0x1b);
  EXPECT_EQ(s_.gpr[kRsp], kUserStack);
  EXPECT_TRUE(s_.flags.ifl());
}

TEST_F(ExceptionTest, IntThroughKernelOnlyGateIsGpWithIdtErrorCode) {
  Gate(0x81, kKernelCode, 0);
  Gate(kGeneralProtection, kKernelCode + 0x100, 0);
  Code(kUserCode, {0xcd, 0x81});
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, kKernelCode + 0x100);
  EXPECT_EQ(R(s_.gpr[kRsp]), 0x81u * 8 + 2);  // error code: IDT, vector, not EXT
  EXPECT_EQ(R(s_.gpr[kRsp] + 8), kUserCode);  // a fault: RIP of the INT
}

TEST_F(ExceptionTest, PageFaultUsesIstErrorCodeAndCr2) {
  Gate(kPageFault, kKernelCode, 0, 1);
  W(0x2000, 0);  // unmap everything ...
  W(kPml4 + 8, 0);
  W(0x2000, 0x87);  // ... then keep the low GiB but fault on 1 GiB
  Code(kUserCode, {0x8b, 0x04, 0x25, 0x00, 0x00, 0x00, 0x40});  // mov eax, [0x40000000]
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.cr2, 0x40000000u);
  EXPECT_EQ(s_.gpr[kRsp], kIst1 - 48);
  EXPECT_EQ(R(kIst1 - 48), 4u);  // user read of a not-present page
  EXPECT_EQ(R(kIst1 - 40), kUserCode);
}

TEST_F(ExceptionTest, FaultDuringDeliveryIsDoubleFaultThenTripleFaultShutsDown) {
  // #GP's gate points at a missing code segment: delivering #GP faults with #GP -> #DF.
  Gate(kDivideError, kKernelCode, 0);
  W(kIdt + kDivideError * 16, (R(kIdt) & ~(0xffffull << 16)) | (0x50ull << 16));  // bad CS
  Gate(kDoubleFault, kKernelCode + 0x200, 0);
  s_.gpr[kRcx] = 0;
  Code(kUserCode, {0xf7, 0xf1});  // div ecx: #DE
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, kKernelCode + 0x200);
  EXPECT_EQ(R(s_.gpr[kRsp]), 0u);  // #DF's error code
  // No usable #DF gate: the same sequence is a triple fault.
  W(kIdt + kDoubleFault * 16, 0);
  s_.rip = kUserCode;
  s_.seg[kCs] = Interpreter::CodeSegmentFrom(0x23, 0x00affb000000ffffull);
  EXPECT_EQ(cpu_->Step(), StepStatus::kShutdown);
}

TEST_F(ExceptionTest, SyscallSysretSwapgsAndMsrs) {
  s_.msr.star = (uint64_t{0x10} << 48) | (uint64_t{0x08} << 32);  // sysret base 0x10
  s_.msr.lstar = kKernelCode;
  s_.msr.sfmask = kIf;
  s_.seg[kGs].base = 0x1111;
  s_.msr.kernel_gs_base = 0x2222;
  Code(kUserCode, {0x0f, 0x05});
  // swapgs; mov ecx, 0xc0000101; rdmsr; sysretq
  Code(kKernelCode, {0x0f, 0x01, 0xf8, 0x48, 0x89, 0xcb, 0xb9, 0x01, 0x01, 0x00, 0xc0, 0x0f, 0x32,
                     0x48, 0x89, 0xd9, 0x48, 0x0f, 0x07});
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.cpl(), 0);
  EXPECT_EQ(s_.seg[kCs].selector, 0x08);
  EXPECT_EQ(s_.seg[kSs].selector, 0x10);
  EXPECT_EQ(s_.gpr[kRcx], kUserCode + 2);
  EXPECT_TRUE(s_.gpr[kR11] & kIf);
  EXPECT_FALSE(s_.flags.ifl());
  for (int i = 0; i < 6; ++i) ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.gpr[kRax], 0x2222u);  // GS base after SWAPGS, read by RDMSR
  EXPECT_EQ(s_.cpl(), 3);
  EXPECT_EQ(s_.seg[kCs].selector, 0x23);
  EXPECT_EQ(s_.seg[kSs].selector, 0x1b);
  EXPECT_EQ(s_.rip, kUserCode + 2);
  EXPECT_TRUE(s_.flags.ifl());
  // At CPL3 RDMSR, SWAPGS and MOV CR are #GP; without a #GP gate that is a double fault
  // chain ending in shutdown, so deliver-off mode reports the #GP itself.
  cpu_->set_deliver_exceptions(false);
  for (std::vector<uint8_t> code :
       {std::vector<uint8_t>{0x0f, 0x32}, {0x0f, 0x01, 0xf8}, {0x0f, 0x20, 0xd8}}) {
    Code(kUserCode + 2, code);
    ASSERT_EQ(cpu_->Step(), StepStatus::kException);
    EXPECT_EQ(cpu_->exception().vector, kGeneralProtection);
  }
}

TEST_F(ExceptionTest, ControlRegistersDescriptorTablesAndMsrChecks) {
  s_.seg[kCs] = Interpreter::CodeSegmentFrom(0x08, 0x00af9b000000ffffull);
  s_.rip = kKernelCode;
  cpu_->set_deliver_exceptions(false);
  // mov rax, cr3; mov cr3, rax; sgdt [0x6000]; lidt [0x6000]; str ebx; wrmsr (bad PAT)
  Code(kKernelCode,
       {0x0f, 0x20, 0xd8, 0x0f, 0x22, 0xd8, 0x0f, 0x01, 0x04, 0x25, 0x00, 0x60, 0x00, 0x00,
        0x0f, 0x01, 0x1c, 0x25, 0x00, 0x60, 0x00, 0x00, 0x0f, 0x00, 0xcb, 0x0f, 0x30});
  for (int i = 0; i < 5; ++i) ASSERT_EQ(cpu_->Step(), StepStatus::kOk) << i;
  EXPECT_EQ(s_.gpr[kRax], kPml4);
  EXPECT_EQ(s_.idtr.base, kGdt);
  EXPECT_EQ(s_.idtr.limit, 0x37);
  EXPECT_EQ(s_.gpr[kRbx], 0x28u);
  s_.gpr[kRcx] = kMsrPat;
  s_.gpr[kRax] = 0x02;  // memory type 2 is reserved
  s_.gpr[kRdx] = 0;
  EXPECT_EQ(cpu_->Step(), StepStatus::kException);
  EXPECT_EQ(cpu_->exception().vector, kGeneralProtection);
  s_.gpr[kRax] = 0x06;
  EXPECT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.msr.pat, 6u);
  // CR0: PG without PE is #GP; CR8 above 15 is #GP; CR5 is #UD.
  Code(s_.rip, {0x0f, 0x22, 0xc0});  // mov cr0, rax
  s_.gpr[kRax] = kCr0Pg;
  EXPECT_EQ(cpu_->Step(), StepStatus::kException);
  Code(s_.rip, {0x44, 0x0f, 0x22, 0xc0});  // mov cr8, rax
  s_.gpr[kRax] = 16;
  EXPECT_EQ(cpu_->Step(), StepStatus::kException);
  s_.gpr[kRax] = 5;
  EXPECT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.cr8, 5u);
  Code(s_.rip, {0x0f, 0x20, 0xe8});  // mov rax, cr5
  EXPECT_EQ(cpu_->Step(), StepStatus::kException);
  EXPECT_EQ(cpu_->exception().vector, kInvalidOpcode);
}

TEST_F(ExceptionTest, StiShadowCoversOneInstructionAndInjectionDelivers) {
  s_.seg[kCs] = Interpreter::CodeSegmentFrom(0x08, 0x00af9b000000ffffull);
  s_.rip = kKernelCode;
  s_.flags.Set(0);
  Gate(0x20, kKernelCode + 0x300, 0);
  Code(kKernelCode, {0xfb, 0x90, 0x90});  // sti; nop; nop
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_TRUE(s_.flags.ifl());
  EXPECT_FALSE(cpu_->InterruptWindowOpen());  // shadow after STI
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_TRUE(cpu_->InterruptWindowOpen());
  ASSERT_EQ(cpu_->InjectInterrupt(0x20), StepStatus::kOk);
  EXPECT_EQ(s_.rip, kKernelCode + 0x300);
  EXPECT_EQ(R(s_.gpr[kRsp]), kKernelCode + 2);  // returns to the second NOP
  EXPECT_FALSE(s_.flags.ifl());
}

TEST_F(ExceptionTest, SingleStepTrapsAfterTheInstructionThatStartedWithTf) {
  Gate(kDebug, kKernelCode, 0);
  // pushfq; or qword [rsp], 0x100; popfq; nop; nop
  Code(kUserCode, {0x9c, 0x48, 0x81, 0x0c, 0x24, 0x00, 0x01, 0x00, 0x00, 0x9d, 0x90, 0x90});
  for (int i = 0; i < 3; ++i) ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, kUserCode + 10) << "POPF set TF: no trap yet, TF was clear when it began";
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);  // nop, then #DB
  EXPECT_EQ(s_.rip, kKernelCode);
  EXPECT_EQ(R(s_.gpr[kRsp]), kUserCode + 11) << "a trap: RIP after the stepped instruction";
  EXPECT_NE(s_.dr[6] & kDr6SingleStep, 0u);
  EXPECT_EQ(s_.flags.Get() & kTf, 0u) << "delivery clears TF";
}

TEST_F(ExceptionTest, MisalignedUserAccessWithAmAndAcIsAlignmentCheck) {
  Gate(kAlignmentCheck, kKernelCode, 0);
  s_.flags.Set(s_.flags.Get() | kAc);
  // mov eax, [rsp+1] (misaligned); with CR0.AM clear first: no fault.
  Code(kUserCode, {0x8b, 0x44, 0x24, 0x01, 0x8b, 0x44, 0x24, 0x01, 0x8b, 0x04, 0x24});
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, kUserCode + 4);
  s_.cr0 |= kCr0Am;
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, kKernelCode);
  EXPECT_EQ(R(s_.gpr[kRsp]), 0u) << "#AC pushes error code 0";
  EXPECT_EQ(R(s_.gpr[kRsp] + 8), kUserCode + 4) << "a fault: RIP of the access";
}

TEST_F(ExceptionTest, AlignedAccessOrAcClearDoesNotFault) {
  s_.cr0 |= kCr0Am;
  // mov eax, [rsp] (aligned) with AC set; then mov eax, [rsp+1] with AC clear.
  Code(kUserCode, {0x8b, 0x04, 0x24, 0x8b, 0x44, 0x24, 0x01});
  s_.flags.Set(s_.flags.Get() | kAc);
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, kUserCode + 3);
  s_.flags.Set(s_.flags.Get() & ~kAc);
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, kUserCode + 7);
}

TEST_F(ExceptionTest, StrToMemoryStoresSixteenBitsWhateverTheOperandSize) {
  W(kUserStack, ~uint64_t{0});
  Code(kUserCode, {0x48, 0x0f, 0x00, 0x0c, 0x24});  // str [rsp] with REX.W
  ASSERT_EQ(cpu_->Step(), StepStatus::kOk);
  EXPECT_EQ(R(kUserStack), 0xffffffffffff0028ull) << "SDM: the selector is stored as 16 bits";
}

}  // namespace
}  // namespace vireo::emu
