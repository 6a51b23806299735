// Segmentation in the legacy modes: limit and type checks (#GP(0)/#SS(0)), descriptor loads
// (#NP, #GP(selector), #SS(selector), accessed bit), the MOV SS/POP SS shadow, 16-bit
// addressing wrap in real mode, far CALL/JMP/RET, LMSW/SMSW, MOV DR and XSETBV. Expected
// values from SDM Vol. 2 (the instructions' "Protected Mode Exceptions") and Vol. 3 ch. 3, 5.
#include "accel/emu/modes_testing.h"

namespace vireo::emu::testing {
namespace {

using ErrorPair = std::pair<int, int64_t>;

class SegmentationTest : public ModesTest {
 protected:
  // Places `bytes` at 0x7000 as the next instruction and runs it.
  StepStatus RunAt7000(std::vector<uint8_t> bytes) {
    s_.rip = 0x7000;
    Code(0x7000, std::move(bytes));
    return Step();
  }
};

TEST_F(SegmentationTest, LimitAndTypeViolationsAreGpOrSs) {
  Flat32();
  s_.seg[kDs] = SegmentFrom(s_, 0x40, Descriptor(0x10000, 0xfff, 0x93, 0x4));
  W32(0x10ffc, 0xdeadbeef);
  ASSERT_EQ(RunAt7000({0x8b, 0x05, 0xfc, 0x0f, 0x00, 0x00}), StepStatus::kOk);  // [0xffc]
  EXPECT_EQ(s_.gpr[kRax], 0xdeadbeefu);
  // The last byte of the dword is past the limit.
  ASSERT_EQ(RunAt7000({0x8b, 0x05, 0xfd, 0x0f, 0x00, 0x00}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  EXPECT_EQ(s_.rip, 0x7000u);  // a fault: nothing retired

  // Expand-down stack (type 7, B=1): offsets above the limit are the valid ones.
  s_.seg[kSs] = SegmentFrom(s_, 0x48, Descriptor(0, 0xfff, 0x97, 0x4));
  s_.gpr[kRsp] = 0x1002;
  ASSERT_EQ(RunAt7000({0x50}), StepStatus::kException);  // push eax at 0xffe
  EXPECT_EQ(Fault(), ErrorPair(kStackFault, 0));
  EXPECT_EQ(s_.gpr[kRsp], 0x1002u);
  s_.gpr[kRsp] = 0x2000;
  ASSERT_EQ(RunAt7000({0x50}), StepStatus::kOk);
  EXPECT_EQ(R32(0x1ffc), 0xdeadbeefu);

  // Writes to read-only data, any use of a null segment, reads of execute-only code.
  s_.seg[kEs] = SegmentFrom(s_, 0x50, Descriptor(0, 0xfffff, 0x91, 0xc));
  ASSERT_EQ(RunAt7000({0x26, 0x89, 0x05, 0x00, 0x01, 0x00, 0x00}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  s_.seg[kFs] = {};
  s_.seg[kFs].unusable = true;
  ASSERT_EQ(RunAt7000({0x64, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  s_.seg[kCs] = SegmentFrom(s_, 0x08, Descriptor(0, 0xfffff, 0x99, 0xc));  // execute-only
  ASSERT_EQ(RunAt7000({0x2e, 0x8b, 0x05, 0x00, 0x00, 0x00, 0x00}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));

  // Fetch: an instruction whose last byte lies past CS's limit.
  s_.seg[kCs] = SegmentFrom(s_, 0x08, Descriptor(0, 0x7005, 0x9b, 0x4));
  s_.rip = 0x7003;
  Code(0x7003, {0xb8, 0x01, 0x00, 0x00, 0x00});  // mov eax, 1: bytes 0x7003..0x7007
  ASSERT_EQ(Step(), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  EXPECT_EQ(s_.rip, 0x7003u);
}

TEST_F(SegmentationTest, DescriptorLoadsCheckTypePresenceAndPrivilege) {
  Flat32();
  W64(kGdt + 0x38, Descriptor(0, 0xfffff, 0x12, 0xc));           // data, not present
  W64(kGdt + 0x40, Descriptor(0x12340000, 0xfffff, 0x92, 0xc));  // data, DPL0, not accessed
  W64(kGdt + 0x48, Descriptor(0, 0xfffff, 0x90, 0xc));           // read-only data
  W64(kGdt + 0x50, Descriptor(0, 0xfffff, 0x12, 0xc));           // writable data, not present
  W64(kGdt + 0x58, Descriptor(0, 0xfffff, 0x98, 0xc));           // execute-only code
  const std::vector<uint8_t> mov_ds = {0x8e, 0xd8}, mov_ss = {0x8e, 0xd0}, mov_es = {0x8e, 0xc0},
                             mov_fs = {0x8e, 0xe0};
  struct Case {
    std::vector<uint8_t> code;
    uint16_t selector;
    ErrorPair fault;
  };
  const Case cases[] = {
      {mov_ds, 0x38, {kSegmentNotPresent, 0x38}},
      {mov_ds, 0x43, {kGeneralProtection, 0x40}},    // RPL 3 > DPL 0
      {mov_ss, 0x48, {kGeneralProtection, 0x48}},    // SS must be writable
      {mov_ss, 0x50, {kStackFault, 0x50}},           // not present SS is #SS(selector)
      {mov_es, 0x58, {kGeneralProtection, 0x58}},    // execute-only code
      {mov_ds, 0x100, {kGeneralProtection, 0x100}},  // past the GDT limit
      {mov_ss, 0x0, {kGeneralProtection, 0}},        // null SS
      {{0x8e, 0xc8}, 0x08, {kInvalidOpcode, -1}},    // mov cs, ax
  };
  for (const Case& c : cases) {
    s_.gpr[kRax] = c.selector;
    ASSERT_EQ(RunAt7000(c.code), StepStatus::kException) << c.selector;
    EXPECT_EQ(Fault(), c.fault) << c.selector;
  }
  EXPECT_EQ(s_.seg[kDs].selector, kData);  // nothing was loaded
  EXPECT_EQ(s_.seg[kSs].selector, kData);

  // A good load fills the cache and sets the accessed bit in the GDT.
  s_.gpr[kRax] = 0x40;
  ASSERT_EQ(RunAt7000(mov_fs), StepStatus::kOk);
  EXPECT_EQ(s_.seg[kFs].base, 0x12340000u);
  EXPECT_EQ(s_.seg[kFs].limit, 0xffffffffu);
  EXPECT_EQ(s_.seg[kFs].type, 3);
  EXPECT_EQ(R64(kGdt + 0x40) >> 40 & 0xff, 0x93u);

  // A null DS loads (unusable); using it is #GP(0).
  s_.gpr[kRax] = 0;
  ASSERT_EQ(RunAt7000(mov_ds), StepStatus::kOk);
  EXPECT_TRUE(s_.seg[kDs].unusable);
  ASSERT_EQ(RunAt7000({0x8b, 0x05, 0x00, 0x00, 0x00, 0x00}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));

  // LSS loads SS:ESP from memory, the offset first (m16:32).
  W32(0x8000, 0x5000);
  W16(0x8004, kData);
  s_.seg[kDs] = s_.seg[kEs];
  ASSERT_EQ(RunAt7000({0x0f, 0xb2, 0x25, 0x00, 0x80, 0x00, 0x00}), StepStatus::kOk);  // lss esp
  EXPECT_EQ(s_.gpr[kRsp], 0x5000u);
  EXPECT_EQ(s_.seg[kSs].selector, kData);
  // POP ES with a bad selector leaves ESP where it was.
  W32(0x5000, 0x38);
  ASSERT_EQ(RunAt7000({0x07}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kSegmentNotPresent, 0x38));
  EXPECT_EQ(s_.gpr[kRsp], 0x5000u);
}

TEST_F(SegmentationTest, MovSsAndPopSsHoldOffInterruptsForOneInstruction) {
  Flat32();
  s_.flags.Set(kIf | 2);
  s_.gpr[kRax] = kData;
  s_.gpr[kRsp] = 0x9000;
  s_.rip = 0x7000;
  Code(0x7000, {0x8e, 0xd0, 0x90, 0x16, 0x17, 0x90});  // mov ss,ax; nop; push ss; pop ss; nop
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_FALSE(Cpu().InterruptWindowOpen());
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_TRUE(Cpu().InterruptWindowOpen());
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_TRUE(Cpu().InterruptWindowOpen());
  EXPECT_EQ(R32(0x9000 - 4), kData);  // PUSH SS zero-extends to 32 bits
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_FALSE(Cpu().InterruptWindowOpen());
  EXPECT_EQ(s_.gpr[kRsp], 0x9000u);
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_TRUE(Cpu().InterruptWindowOpen());
}

TEST_F(SegmentationTest, RealModeSixteenBitAddressingWraps) {
  Real(0);
  s_.seg[kDs] = RealModeSegment(0x100, false);  // base 0x1000
  s_.seg[kSs] = RealModeSegment(0x200, false);  // base 0x2000
  W16(0x1001, 0xbeef);
  s_.gpr[kRbx] = 0xffff;
  s_.gpr[kRsi] = 2;
  ASSERT_EQ(RunAt7000({0x8b, 0x00}), StepStatus::kOk);  // mov ax, [bx+si]: EA wraps to 1
  EXPECT_EQ(s_.gpr[kRax] & 0xffff, 0xbeefu);
  // A word at offset 0xffff crosses the 64 KiB limit: #GP(0) (SDM Vol. 3 20.1.3).
  ASSERT_EQ(RunAt7000({0x8b, 0x07}), StepStatus::kException);  // mov ax, [bx]
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  // A 32-bit address past the limit faults too (no wrap with 67h).
  s_.gpr[kRbx] = 0x10000;
  ASSERT_EQ(RunAt7000({0x67, 0x8b, 0x03}), StepStatus::kException);  // mov ax, [ebx]
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  // PUSH with SP = 0 wraps to 0xfffe.
  s_.gpr[kRsp] = 0;
  s_.gpr[kRax] = 0x1234;
  ASSERT_EQ(RunAt7000({0x50}), StepStatus::kOk);
  EXPECT_EQ(s_.gpr[kRsp], 0xfffeu);
  EXPECT_EQ(R16(0x2000 + 0xfffe), 0x1234u);
  // IP wraps at 64 KiB: a NOP at CS:FFFF continues at CS:0000.
  s_.seg[kCs] = RealModeSegment(0x100, true);
  s_.rip = 0xffff;
  Code(0x1000 + 0xffff, {0x90});
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, 0u);
  // Far JMP in real mode: CS = selector, base = selector * 16.
  s_.seg[kCs] = RealModeSegment(0, true);
  ASSERT_EQ(RunAt7000({0xea, 0x34, 0x12, 0x00, 0x30}), StepStatus::kOk);  // jmp 0x3000:0x1234
  EXPECT_EQ(s_.seg[kCs].selector, 0x3000);
  EXPECT_EQ(s_.seg[kCs].base, 0x30000u);
  EXPECT_EQ(s_.rip, 0x1234u);
}

TEST_F(SegmentationTest, FarCallAndReturnWithoutPrivilegeChange) {
  Flat32();
  s_.gpr[kRsp] = 0x9000;
  s_.rip = 0x7000;
  Code(0x7000, {
                   0x6a, 0x01, 0x6a, 0x02,                    // push 1; push 2
                   0x9a, 0x00, 0x71, 0x00, 0x00, 0x08, 0x00,  // call 0x08:0x7100
                   0xff, 0x1d, 0x00, 0x80, 0x00, 0x00,        // call far [0x8000]
               });
  Code(0x7100, {0xca, 0x08, 0x00});  // retf 8
  Code(0x7200, {0xcb});              // retf
  W32(0x8000, 0x7200);
  W16(0x8004, kCode32);
  ASSERT_EQ(Steps(3), StepStatus::kOk);
  EXPECT_EQ(s_.rip, 0x7100u);
  EXPECT_EQ(s_.gpr[kRsp], 0x9000u - 16);
  EXPECT_EQ(R32(0x9000 - 16), 0x700bu);  // return EIP, then CS
  EXPECT_EQ(R32(0x9000 - 12), kCode32);
  ASSERT_EQ(Step(), StepStatus::kOk);  // retf 8 also drops the two pushed dwords
  EXPECT_EQ(s_.rip, 0x700bu);
  EXPECT_EQ(s_.gpr[kRsp], 0x9000u);
  ASSERT_EQ(Step(), StepStatus::kOk);  // call far [mem], m16:32
  EXPECT_EQ(s_.rip, 0x7200u);
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.rip, 0x7011u);
  EXPECT_EQ(s_.gpr[kRsp], 0x9000u);
  EXPECT_EQ(s_.seg[kCs].selector, kCode32);

  // JMP to a DPL3 non-conforming segment from CPL0, to a not-present one, to a call gate.
  W64(kGdt + 0x38, Descriptor(0, 0xfffff, 0x1a, 0xc));  // code, not present
  W64(kGdt + 0x40, 0x0000ec0000080000ull);              // 32-bit call gate
  ASSERT_EQ(RunAt7000({0xea, 0, 0, 0, 0, 0x28, 0}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0x28));
  ASSERT_EQ(RunAt7000({0xea, 0, 0, 0, 0, 0x38, 0}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kSegmentNotPresent, 0x38));
  EXPECT_EQ(RunAt7000({0xea, 0, 0, 0, 0, 0x40, 0}), StepStatus::kUnimplemented);
  // Past the target's limit: #GP(0).
  W64(kGdt + 0x48, Descriptor(0, 0xfff, 0x9a, 0x4));
  ASSERT_EQ(RunAt7000({0xea, 0x00, 0x10, 0, 0, 0x48, 0}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  EXPECT_EQ(s_.seg[kCs].selector, kCode32);
}

TEST_F(SegmentationTest, FarReturnToOuterLevelLoadsSsEspAndDropsKernelData) {
  Flat32();
  s_.gpr[kRsp] = 0x9000 - 16;
  W32(0x9000 - 16, 0x7100);           // EIP
  W32(0x9000 - 12, kUserCode32 | 3);  // CS
  W32(0x9000 - 8, 0x6000);            // ESP
  W32(0x9000 - 4, kUserData | 3);     // SS
  s_.seg[kEs] = SegmentFrom(s_, kUserData | 3, kDescUserData);
  ASSERT_EQ(RunAt7000({0xcb}), StepStatus::kOk);  // retf
  EXPECT_EQ(s_.cpl(), 3);
  EXPECT_EQ(s_.seg[kCs].selector, kUserCode32 | 3);
  EXPECT_EQ(s_.seg[kSs].selector, kUserData | 3);
  EXPECT_EQ(s_.gpr[kRsp], 0x6000u);
  EXPECT_EQ(s_.rip, 0x7100u);
  EXPECT_TRUE(s_.seg[kDs].unusable);   // DPL0 data is not for CPL3
  EXPECT_FALSE(s_.seg[kEs].unusable);  // DPL3 data stays
  // Back up is not a RET's job: RPL < CPL is #GP(selector).
  s_.gpr[kRsp] = 0x6000;
  W32(0x6000, 0x7000);
  W32(0x6004, kCode32);
  ASSERT_EQ(RunAt7000({0xcb}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, kCode32));
}

TEST_F(SegmentationTest, CompatibilityModeCallsInto64BitCodeAndReturns) {
  Flat32();
  W64(0x4000, 0x5000 | 3);
  W64(0x5000, 0x6000 | 3);
  W64(0x6000, 0x83);
  s_.cr0 |= kCr0Pg;
  s_.cr3 = 0x4000;
  s_.cr4 = kCr4Pae;
  s_.efer = kEferLme | kEferLma;
  s_.gpr[kRsp] = 0x9000;
  s_.rip = 0x7000;
  ASSERT_EQ(s_.mode(), CpuMode::kProtected32);
  Code(0x7000, {
                   0x9a, 0x00, 0x72, 0x00, 0x00, 0x10, 0x00,  // call 0x10:0x7200
                   0x6a, 0x10,                                // push 0x10
                   0x68, 0x00, 0x73, 0x00, 0x00,              // push 0x7300
                   0xcb,                                      // lretl (Linux's PVH entry)
               });
  Code(0x7200, {
                   0x48, 0xc7, 0xc0, 0x2a, 0x00, 0x00, 0x00,  // mov rax, 42
                   0xcb,                                      // retf (32-bit operands)
               });
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.mode(), CpuMode::kLong64);
  EXPECT_EQ(R32(0x9000 - 8), 0x7007u);
  ASSERT_EQ(Steps(2), StepStatus::kOk);
  EXPECT_EQ(s_.mode(), CpuMode::kProtected32);
  EXPECT_EQ(s_.rip, 0x7007u);
  EXPECT_EQ(s_.gpr[kRax], 42u);
  EXPECT_EQ(s_.gpr[kRsp], 0x9000u);
  ASSERT_EQ(Steps(3), StepStatus::kOk);
  EXPECT_EQ(s_.mode(), CpuMode::kLong64);
  EXPECT_EQ(s_.rip, 0x7300u);
  EXPECT_EQ(s_.gpr[kRsp], 0x9000u);
}

TEST_F(SegmentationTest, SixtyFourBitFarReturnAndFarJumpIntoCompatibilityMode) {
  Flat32();
  W64(0x4000, 0x5000 | 3);
  W64(0x5000, 0x6000 | 3);
  W64(0x6000, 0x83);
  s_.cr0 |= kCr0Pg;
  s_.cr3 = 0x4000;
  s_.cr4 = kCr4Pae;
  s_.efer = kEferLme | kEferLma;
  s_.seg[kCs] = SegmentFrom(s_, kCode64, kDescCode64);
  s_.gpr[kRsp] = 0x9000;
  s_.rip = 0x7000;
  // push 0x10; push 0x7200; lretq (as the guest kit's linux_entry64 does).
  Code(0x7000, {0x6a, 0x10, 0x68, 0x00, 0x72, 0x00, 0x00, 0x48, 0xcb});
  Code(0x7200, {0xff, 0x2c, 0x25, 0x00, 0x80, 0x00, 0x00});  // jmp far [0x8000] (m16:32)
  W32(0x8000, 0x7300);
  W16(0x8004, kCode32);
  ASSERT_EQ(Steps(3), StepStatus::kOk);
  EXPECT_EQ(s_.rip, 0x7200u);
  EXPECT_EQ(s_.gpr[kRsp], 0x9000u);
  EXPECT_EQ(s_.mode(), CpuMode::kLong64);
  ASSERT_EQ(Step(), StepStatus::kOk);
  EXPECT_EQ(s_.mode(), CpuMode::kProtected32);
  EXPECT_EQ(s_.seg[kCs].selector, kCode32);
  EXPECT_EQ(s_.rip, 0x7300u);
  // A far JMP register form is #UD.
  ASSERT_EQ(RunAt7000({0xff, 0xe8}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kInvalidOpcode, -1));
}

TEST_F(SegmentationTest, SelectorTestsLarLslVerrVerwArplAndClts) {
  Flat32();
  W64(kGdt + 0x40, Descriptor(0x1000, 0xfffff, 0x92, 0xc));  // DPL0 data, 4 GiB
  W64(kGdt + 0x48, Descriptor(0, 0xfff, 0x90, 0x4));         // read-only data
  W64(kGdt + 0x50, Descriptor(kTss, 0x67, 0x89, 0x0));       // available 32-bit TSS
  W64(kGdt + 0x58, 0x0000ec0000080000ull);                   // call gate
  W64(kGdt + 0x60, Descriptor(0, 0xfffff, 0x98, 0xc));       // execute-only code
  const std::vector<uint8_t> lar = {0x0f, 0x02, 0xc1}, lsl = {0x0f, 0x03, 0xc1},
                             verr = {0x0f, 0x00, 0xe1}, verw = {0x0f, 0x00, 0xe9};
  struct Case {
    std::vector<uint8_t> code;
    uint16_t selector;
    bool zf;
    uint64_t eax;  // when zf
  };
  const Case cases[] = {
      {lar, 0x40, true, 0x00c09200},  // flags nibble, access byte
      {lsl, 0x40, true, 0xffffffff},  // the limit scaled by G
      {lar, 0x43, false, 0},          // RPL 3 > DPL 0
      {lsl, 0x00, false, 0},          // null
      {lsl, 0x100, false, 0},         // past the GDT limit
      {lsl, 0x50, true, 0x67},        // a TSS has a limit
      {lar, 0x58, true, 0x0000ec00},  // LAR accepts call gates ...
      {lsl, 0x58, false, 0},          // ... LSL does not
      {verr, 0x40, true, 0},         {verw, 0x40, true, 0},    {verw, 0x48, false, 0},
      {verr, 0x60, false, 0},        {verr, kCode32, true, 0}, {verr, 0x50, false, 0},
  };
  for (const Case& c : cases) {
    s_.gpr[kRax] = 0x5555;
    s_.gpr[kRcx] = c.selector;
    s_.flags.Set(c.zf ? 2 : kZf | 2);  // the opposite of what is expected
    ASSERT_EQ(RunAt7000(c.code), StepStatus::kOk) << c.selector;
    EXPECT_EQ(s_.flags.zf(), c.zf) << c.selector;
    if (c.code != verr && c.code != verw) {
      EXPECT_EQ(s_.gpr[kRax], c.zf ? c.eax : 0x5555u) << c.selector;
    }
  }
  // ARPL raises the destination's RPL to the source's.
  s_.gpr[kRax] = 0x10;
  s_.gpr[kRcx] = 3;
  ASSERT_EQ(RunAt7000({0x63, 0xc8}), StepStatus::kOk);  // arpl ax, cx
  EXPECT_EQ(s_.gpr[kRax], 0x13u);
  EXPECT_TRUE(s_.flags.zf());
  ASSERT_EQ(RunAt7000({0x63, 0xc8}), StepStatus::kOk);
  EXPECT_FALSE(s_.flags.zf());
  // CLTS clears CR0.TS at CPL0 only.
  s_.cr0 |= 8;
  ASSERT_EQ(RunAt7000({0x0f, 0x06}), StepStatus::kOk);
  EXPECT_FALSE(s_.cr0 & 8);
  s_.seg[kCs] = SegmentFrom(s_, kUserCode32 | 3, kDescUserCode32);
  ASSERT_EQ(RunAt7000({0x0f, 0x06}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  // Real mode: LAR and ARPL are #UD.
  Real(0);
  ASSERT_EQ(RunAt7000(lar), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kInvalidOpcode, -1));
  ASSERT_EQ(RunAt7000({0x63, 0xc8}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kInvalidOpcode, -1));
}

TEST_F(SegmentationTest, LmswSmsw) {
  Real(0);
  s_.cr0 = 0x10;
  s_.gpr[kRax] = 0xf;                                         // PE MP EM TS
  ASSERT_EQ(RunAt7000({0x0f, 0x01, 0xf0}), StepStatus::kOk);  // lmsw ax
  EXPECT_EQ(s_.cr0, 0x1fu);
  s_.gpr[kRax] = 0;  // LMSW cannot clear PE
  ASSERT_EQ(RunAt7000({0x0f, 0x01, 0xf0}), StepStatus::kOk);
  EXPECT_EQ(s_.cr0, 0x11u);
  Flat32();
  s_.cr0 = 0x10011;                                           // WP ET PE
  ASSERT_EQ(RunAt7000({0x0f, 0x01, 0xe0}), StepStatus::kOk);  // smsw eax
  EXPECT_EQ(s_.gpr[kRax], s_.cr0);
  W32(0x8000, 0xffffffff);
  ASSERT_EQ(RunAt7000({0x0f, 0x01, 0x25, 0x00, 0x80, 0x00, 0x00}), StepStatus::kOk);  // smsw m16
  EXPECT_EQ(R32(0x8000), 0xffff0011u);
  s_.seg[kCs] = SegmentFrom(s_, kUserCode32 | 3, kDescUserCode32);  // CPL3
  s_.seg[kDs] = SegmentFrom(s_, kUserData | 3, kDescUserData);
  ASSERT_EQ(RunAt7000({0x0f, 0x01, 0xf0}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
}

TEST_F(SegmentationTest, MovDebugRegisters) {
  Flat32();
  s_.gpr[kRax] = 0x12345678;
  ASSERT_EQ(RunAt7000({0x0f, 0x23, 0xc0}), StepStatus::kOk);  // mov dr0, eax
  ASSERT_EQ(RunAt7000({0x0f, 0x21, 0xc1}), StepStatus::kOk);  // mov ecx, dr0
  EXPECT_EQ(s_.gpr[kRcx], 0x12345678u);
  s_.gpr[kRax] = 1;
  ASSERT_EQ(RunAt7000({0x0f, 0x23, 0xf8}), StepStatus::kOk);  // mov dr7, eax
  EXPECT_EQ(s_.dr[7], 0x401u);                                // bit 10 reads as 1
  ASSERT_EQ(RunAt7000({0x0f, 0x21, 0xe2}), StepStatus::kOk);  // mov edx, dr4 = dr6
  EXPECT_EQ(s_.gpr[kRdx], 0xffff0ff0u);
  s_.cr4 |= kCr4De;  // DR4/DR5 are #UD with debugging extensions
  ASSERT_EQ(RunAt7000({0x0f, 0x21, 0xe2}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kInvalidOpcode, -1));
  s_.seg[kCs] = SegmentFrom(s_, kUserCode32 | 3, kDescUserCode32);
  ASSERT_EQ(RunAt7000({0x0f, 0x21, 0xc1}), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
}

TEST_F(SegmentationTest, XsetbvChecksXcr0Rules) {
  Flat32();
  const std::vector<uint8_t> xsetbv = {0x0f, 0x01, 0xd1}, xgetbv = {0x0f, 0x01, 0xd0};
  s_.gpr[kRax] = 3;
  ASSERT_EQ(RunAt7000(xsetbv), StepStatus::kException);  // no CR4.OSXSAVE
  EXPECT_EQ(Fault(), ErrorPair(kInvalidOpcode, -1));
  s_.cr4 |= kCr4Osxsave;
  for (uint64_t bad : {0ull, 2ull, 5ull, 0x9ull}) {  // no x87; no x87; AVX w/o SSE; unknown
    s_.gpr[kRax] = bad;
    ASSERT_EQ(RunAt7000(xsetbv), StepStatus::kException) << bad;
    EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0)) << bad;
  }
  s_.gpr[kRax] = 7;
  s_.gpr[kRcx] = 1;  // only XCR0 exists
  ASSERT_EQ(RunAt7000(xsetbv), StepStatus::kException);
  s_.gpr[kRcx] = 0;
  ASSERT_EQ(RunAt7000(xsetbv), StepStatus::kOk);
  EXPECT_EQ(s_.xcr0, 7u);
  s_.seg[kCs] = SegmentFrom(s_, kUserCode32 | 3, kDescUserCode32);  // CPL3: read only
  s_.gpr[kRax] = 0;
  ASSERT_EQ(RunAt7000(xgetbv), StepStatus::kOk);
  EXPECT_EQ(s_.gpr[kRax], 7u);
  EXPECT_EQ(s_.gpr[kRdx], 0u);
  s_.gpr[kRax] = 3;
  ASSERT_EQ(RunAt7000(xsetbv), StepStatus::kException);
  EXPECT_EQ(Fault(), ErrorPair(kGeneralProtection, 0));
  EXPECT_EQ(s_.xcr0, 7u);
}

}  // namespace
}  // namespace vireo::emu::testing
