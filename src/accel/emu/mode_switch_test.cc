// Mode switches run by the Interpreter: real mode -> 16-bit protected mode -> 32-bit
// protected mode -> PAE + EFER.LME + paging (compatibility mode) -> 64-bit mode, with the
// state checked at every stage; protected mode back to real mode; and the guest kit's own PVH
// entry (tests/guests/runtime/entry.S) run from its 32-bit entry point to 64-bit code and on
// to the end of the hello guest; its AP trampoline from real mode to 64-bit code.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iterator>

#include "accel/emu/modes_testing.h"
#include "arch/x86/boot_cpu.h"
#include "arch/x86/layout.h"
#include "boot/kernel_loader.h"

namespace vireo::emu::testing {
namespace {

constexpr uint64_t kPml4 = 0x4000, kPdpt = 0x5000, kPd = 0x6000;

class ModeSwitchTest : public ModesTest {};

TEST_F(ModeSwitchTest, RealToProtectedToLongModeStageByStage) {
  Real(0x0700);  // CS base 0x7000: the code below runs at linear 0x7000
  s_.gdtr = {};
  s_.rip = 0;
  W16(0x1100, 0xff);  // the LGDT operand: limit, base
  W32(0x1102, kGdt);
  W64(kPml4, kPdpt | 3);
  W64(kPdpt, kPd | 3);
  W64(kPd, 0x83);  // 2 MiB identity page
  Code(0x7000, {
                   0x0f, 0x01, 0x16, 0x00, 0x11,                    // lgdt [0x1100]
                   0x0f, 0x20, 0xc0,                                // mov eax, cr0
                   0x0c, 0x01,                                      // or al, 1
                   0x0f, 0x22, 0xc0,                                // mov cr0, eax
                   0x66, 0xea, 0x00, 0x71, 0x00, 0x00, 0x08, 0x00,  // jmp dword 0x08:0x7100
               });
  Code(0x7100, {
                   0x66, 0xb8, 0x18, 0x00,                    // mov ax, 0x18
                   0x8e, 0xd8,                                // mov ds, ax
                   0x8e, 0xd0,                                // mov ss, ax
                   0xbc, 0x00, 0x90, 0x00, 0x00,              // mov esp, 0x9000
                   0x0f, 0x20, 0xe0,                          // mov eax, cr4
                   0x83, 0xc8, 0x20,                          // or eax, 0x20 (PAE)
                   0x0f, 0x22, 0xe0,                          // mov cr4, eax
                   0xb8, 0x00, 0x40, 0x00, 0x00,              // mov eax, kPml4
                   0x0f, 0x22, 0xd8,                          // mov cr3, eax
                   0xb9, 0x80, 0x00, 0x00, 0xc0,              // mov ecx, IA32_EFER
                   0x0f, 0x32,                                // rdmsr
                   0x0d, 0x00, 0x01, 0x00, 0x00,              // or eax, LME
                   0x0f, 0x30,                                // wrmsr
                   0x0f, 0x20, 0xc0,                          // mov eax, cr0
                   0x0d, 0x00, 0x00, 0x00, 0x80,              // or eax, PG
                   0x0f, 0x22, 0xc0,                          // mov cr0, eax
                   0xea, 0x00, 0x72, 0x00, 0x00, 0x10, 0x00,  // jmp 0x10:0x7200
               });
  Code(0x7200, {
                   0x48, 0xb8, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // mov rax, imm64
                   0x48, 0x89, 0x04, 0x25, 0x00, 0x80, 0x00, 0x00,              // mov [0x8000], rax
                   0xf4,                                                        // hlt
               });
  // Real mode: LGDT takes a 24-bit base with a 16-bit operand.
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.gdtr.base, kGdt);
  EXPECT_EQ(s_.gdtr.limit, 0xff);
  ASSERT_EQ(Steps(3), StepStatus::kOk);
  // PE is on but CS still holds its real-mode cache: 16-bit protected mode.
  EXPECT_TRUE(s_.cr0 & kCr0Pe);
  EXPECT_EQ(s_.mode(), CpuMode::kReal16);
  EXPECT_EQ(s_.seg[kCs].base, 0x7000u);
  ASSERT_EQ(Step(), StepStatus::kOk);  // the far jump loads CS from the GDT
  EXPECT_EQ(s_.mode(), CpuMode::kProtected32);
  EXPECT_EQ(s_.seg[kCs].selector, kCode32);
  EXPECT_EQ(s_.seg[kCs].base, 0u);
  EXPECT_EQ(s_.seg[kCs].limit, 0xffffffffu);
  EXPECT_TRUE(s_.seg[kCs].db);
  EXPECT_EQ(s_.rip, 0x7100u);
  EXPECT_EQ(R64(kGdt + kCode32), kDescCode32 | (uint64_t{1} << 40));  // accessed bit set
  ASSERT_EQ(Steps(3), StepStatus::kOk);
  EXPECT_EQ(s_.seg[kSs].selector, kData);
  EXPECT_EQ(s_.seg[kDs].limit, 0xffffffffu);
  EXPECT_TRUE(s_.seg[kSs].db);
  EXPECT_TRUE(s_.interrupt_shadow);  // MOV SS
  ASSERT_EQ(Steps(12), StepStatus::kOk);
  EXPECT_EQ(s_.efer & (kEferLme | kEferLma), kEferLme);  // LME on, paging still off
  ASSERT_EQ(Steps(1), StepStatus::kOk);                  // mov cr0: paging on
  EXPECT_TRUE(s_.efer & kEferLma);
  EXPECT_EQ(s_.mode(), CpuMode::kProtected32);  // compatibility mode: CS.L = 0
  EXPECT_EQ(s_.rip, 0x7137u);
  ASSERT_EQ(Step(), StepStatus::kOk);  // jmp 0x10: into 64-bit code
  EXPECT_EQ(s_.mode(), CpuMode::kLong64);
  EXPECT_EQ(s_.seg[kCs].selector, kCode64);
  EXPECT_TRUE(s_.seg[kCs].l);
  EXPECT_EQ(s_.rip, 0x7200u);
  ASSERT_EQ(Steps(2), StepStatus::kOk);
  EXPECT_EQ(Step(), StepStatus::kHalt);
  EXPECT_EQ(R64(0x8000), 0x1122334455667788u);
}

TEST_F(ModeSwitchTest, ProtectedModeBackToRealMode) {
  // A 16-bit code segment (base 0, limit 64 KiB) to leave protected mode from, as the SDM's
  // 9.9.2 sequence does; then CR0.PE = 0 and a far jump loads a real-mode CS.
  W64(kGdt + 0x38, Descriptor(0, 0xffff, 0x9a, 0x0));
  Flat32();
  s_.rip = 0x7000;
  Code(0x7000, {0xea, 0x07, 0x70, 0x00, 0x00, 0x38, 0x00});  // jmp 0x38:0x7007
  Code(0x7007, {
                   0x0f, 0x20, 0xc0,              // mov eax, cr0 (16-bit code)
                   0x66, 0x83, 0xe0, 0xfe,        // and eax, ~1
                   0x0f, 0x22, 0xc0,              // mov cr0, eax
                   0xea, 0x05, 0x00, 0x00, 0x08,  // jmp 0x0800:0x0005
               });
  Code(0x8005, {0xb8, 0x34, 0x12});  // mov ax, 0x1234 (real mode)
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.mode(), CpuMode::kReal16);  // 16-bit protected mode
  EXPECT_EQ(s_.seg[kCs].selector, 0x38);
  ASSERT_EQ(Steps(3), StepStatus::kOk);
  EXPECT_FALSE(s_.cr0 & kCr0Pe);
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.seg[kCs].selector, 0x0800);
  EXPECT_EQ(s_.seg[kCs].base, 0x8000u);
  EXPECT_EQ(s_.rip, 5u);
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.gpr[kRax] & 0xffff, 0x1234u);
}

// The exact path `vireo run --accel emu` takes for PVH guests: the guest kit's hello.elf,
// loaded by the PVH loader, started in SetupBootCpu's 32-bit state, runs its own entry code
// (LGDT, far jump, segment loads, PAE, CR3, EFER.LME, paging, far jump) into 64-bit code,
// then the guest itself prints its greeting on COM1 and halts.
std::vector<uint8_t> HelloElf() {
  std::ifstream file(VIREO_EMU_GUEST_DIR "/hello.elf", std::ios::binary);
  if (!file) return {};
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(file)), {});
}

TEST_F(ModeSwitchTest, GuestKitPvhEntryReachesLongMode) {
  std::vector<uint8_t> elf = HelloElf();
  if (elf.empty()) GTEST_SKIP() << "guests/hello.elf is not built (target guest_hello)";
  RamRange range{0, 64 << 20};
  auto m = GuestMemory::Create({&range, 1}, {});
  ASSERT_TRUE(m);
  GuestMemory memory = std::move(*m);
  boot::MachineInfo machine;
  machine.memory_size = range.size;
  machine.e820 = x86::E820Map(range.size);
  auto entry = boot::LoadKernel(memory, {elf, std::nullopt, ""}, boot::BootProtocol::kPvh, machine);
  ASSERT_TRUE(entry) << entry.error().message;
  ASSERT_EQ(entry->mode, boot::EntryMode::kProtected32);
  ASSERT_TRUE(x86::WriteBootTables(memory, x86::CpuMode::kProtected32));
  const accel::SpecialRegisters sregs = x86::BootSpecialRegisters({}, x86::CpuMode::kProtected32);
  CpuState s;
  s.seg = {sregs.es, sregs.cs, sregs.ss, sregs.ds, sregs.fs, sregs.gs};
  s.gdtr = sregs.gdt;
  s.idtr = sregs.idt;
  s.tr = sregs.tr;
  s.ldtr = sregs.ldt;
  s.cr0 = sregs.cr0;
  s.cr4 = sregs.cr4;
  s.efer = sregs.efer;
  s.rip = entry->entry_point;
  s.gpr[kRbx] = entry->rbx;
  s.gpr[kRsp] = s.gpr[kRbp] = x86::kBootStackTop;
  s.flags.Set(0x2);
  ASSERT_EQ(s.mode(), CpuMode::kProtected32);
  NullEnv env;
  Interpreter cpu(s, memory, env);
  cpu.set_deliver_exceptions(true);
  int steps = 0;
  StepStatus st = StepStatus::kOk;
  // The entry is a few dozen instructions; 1000 bounds a runaway.
  while (s.mode() != CpuMode::kLong64 && steps < 1000 && st == StepStatus::kOk) {
    st = cpu.Step();
    ++steps;
  }
  ASSERT_EQ(st, StepStatus::kOk) << "rip " << std::hex << s.rip;
  ASSERT_EQ(s.mode(), CpuMode::kLong64) << "rip " << std::hex << s.rip;
  EXPECT_TRUE(s.efer & kEferLma);
  EXPECT_TRUE(s.cr0 & kCr0Pg);
  EXPECT_TRUE(s.cr4 & kCr4Pae);
  EXPECT_EQ(s.seg[kCs].selector, 0x10);  // KERNEL_CS64 of entry.S
  EXPECT_EQ(s.seg[kDs].selector, 0x18);  // KERNEL_DS, loaded in 32-bit code
  EXPECT_LT(steps, 100);
  std::printf("PVH entry: %d instructions from the 32-bit entry to 64-bit mode\n", steps);
  // Then the whole guest: its serial output (COM1 THR writes; LSR reads say "empty") up to
  // the final HLT. 1M steps bound it (it needs about 0.1M).
  std::string serial;
  for (int i = 0; i < 1000000 && st == StepStatus::kOk; ++i) {
    st = cpu.Step();
    if (st == StepStatus::kIo) {
      const IoRequest& io = cpu.io();
      if (io.is_write && io.port == 0x3f8) serial += static_cast<char>(io.data);
      if (!io.is_write) cpu.CompleteIn(io.port == 0x3fd ? 0x60 : 0xff);
      st = StepStatus::kOk;
    } else if (st == StepStatus::kMmio && cpu.mmio().is_write) {
      st = StepStatus::kOk;
    }
  }
  EXPECT_EQ(st, StepStatus::kHalt) << "rip " << std::hex << s.rip;
  EXPECT_NE(serial.find("hello from vireo guest"), std::string::npos) << serial;
}

// The guest kit's AP start-up trampoline (runtime/trampoline.S), as an AP runs it after
// SIPI: real mode at CS = page << 8, IP = 0; it loads the GDT, sets CR0.PE, far-jumps to
// ap_entry32, which enables PAE paging and long mode and far-jumps to 64-bit ap_entry64.
TEST_F(ModeSwitchTest, GuestKitApTrampolineRunsFromRealModeToLongMode) {
  std::vector<uint8_t> elf = HelloElf();
  if (elf.empty()) GTEST_SKIP() << "guests/hello.elf is not built (target guest_hello)";
  RamRange range{0, 64 << 20};
  auto m = GuestMemory::Create({&range, 1}, {});
  ASSERT_TRUE(m);
  GuestMemory memory = std::move(*m);
  boot::MachineInfo machine;
  machine.memory_size = range.size;
  machine.e820 = x86::E820Map(range.size);
  ASSERT_TRUE(boot::LoadKernel(memory, {elf, std::nullopt, ""}, boot::BootProtocol::kPvh, machine));
  // The trampoline's first bytes: cli; cld; mov ax, cs; mov ds, ax; lgdtl [..]. smp.cc copies
  // it to a page below 1 MiB; so does this test (it is position-independent).
  const std::vector<uint8_t> start = {0xfa, 0xfc, 0x8c, 0xc8, 0x8e, 0xd8, 0x66, 0x0f, 0x01, 0x16};
  auto at = std::search(elf.begin(), elf.end(), start.begin(), start.end());
  ASSERT_NE(at, elf.end()) << "trampoline not found in hello.elf";
  ASSERT_GE(elf.end() - at, 64);
  ASSERT_TRUE(memory.Write(0x8000, std::span<const uint8_t>(&*at, 64)));
  // The INIT/SIPI state (SDM Vol. 3 Table 9-1, SIPI vector 8).
  CpuState s;
  s.cr0 = 0x60000010;
  s.seg[kCs] = RealModeSegment(0x0800, true);
  for (Seg seg : {kEs, kSs, kDs, kFs, kGs}) s.seg[seg] = RealModeSegment(0, false);
  s.gdtr = s.idtr = {0, 0xffff};
  s.rip = 0;
  NullEnv env;
  Interpreter cpu(s, memory, env);
  int steps = 0;
  StepStatus st = StepStatus::kOk;
  while (s.mode() != CpuMode::kLong64 && steps < 1000 && st == StepStatus::kOk) {
    st = cpu.Step();
    ++steps;
  }
  ASSERT_EQ(st, StepStatus::kOk) << "rip " << std::hex << s.rip;
  ASSERT_EQ(s.mode(), CpuMode::kLong64);
  EXPECT_EQ(s.seg[kCs].selector, 0x10);
  EXPECT_EQ(s.seg[kSs].selector, 0x18);
  EXPECT_TRUE(s.efer & kEferLma);
  EXPECT_LT(steps, 40);
  std::printf("AP trampoline: %d instructions from real mode to 64-bit mode\n", steps);
}

}  // namespace
}  // namespace vireo::emu::testing
