#include "arch/x86/boot_cpu.h"

#include <array>
#include <cstring>

#include "arch/x86/layout.h"

namespace vireo::x86 {
namespace {

// Control register and EFER bits (Intel SDM Vol. 3A, 2.5 and 2.2.1).
constexpr uint64_t kCr0Pe = 1ull << 0;
constexpr uint64_t kCr0Et = 1ull << 4;
constexpr uint64_t kCr0Pg = 1ull << 31;
constexpr uint64_t kCr4Pae = 1ull << 5;
constexpr uint64_t kEferLme = 1ull << 8;
constexpr uint64_t kEferLma = 1ull << 10;

// Page-table entry bits.
constexpr uint64_t kPtePresent = 1ull << 0;
constexpr uint64_t kPteWrite = 1ull << 1;
constexpr uint64_t kPtePageSize = 1ull << 7;

// GDT entries: null, null, code (0x10), data (0x18), as Linux's boot protocol expects.
constexpr uint64_t kGdtCode64 = 0x00af9b000000ffffull;  // L=1, P, DPL0, execute/read, accessed
constexpr uint64_t kGdtCode32 = 0x00cf9b000000ffffull;  // D=1, G=1, flat 4 GiB
constexpr uint64_t kGdtData = 0x00cf93000000ffffull;    // flat read/write, accessed
constexpr uint16_t kCodeSelector = 0x10;
constexpr uint16_t kDataSelector = 0x18;

accel::Segment SegmentFromDescriptor(uint64_t desc, uint16_t selector) {
  accel::Segment s;
  s.base = ((desc >> 16) & 0xffffff) | (((desc >> 56) & 0xff) << 24);
  uint32_t limit = static_cast<uint32_t>((desc & 0xffff) | (((desc >> 48) & 0xf) << 16));
  s.g = (desc >> 55) & 1;
  s.limit = s.g ? (limit << 12) | 0xfff : limit;
  s.selector = selector;
  s.type = (desc >> 40) & 0xf;
  s.s = (desc >> 44) & 1;
  s.dpl = (desc >> 45) & 3;
  s.present = (desc >> 47) & 1;
  s.avl = (desc >> 52) & 1;
  s.l = (desc >> 53) & 1;
  s.db = (desc >> 54) & 1;
  return s;
}

std::array<uint8_t, 8> AsU8(uint64_t value) {
  std::array<uint8_t, 8> bytes;
  std::memcpy(bytes.data(), &value, 8);
  return bytes;
}

}  // namespace

Status WriteBootTables(const GuestMemory& memory, CpuMode mode) {
  const std::array<uint64_t, 4> gdt = {0, 0, mode == CpuMode::kLong64 ? kGdtCode64 : kGdtCode32,
                                       kGdtData};
  VIREO_TRY_STATUS(memory.WriteOrFail(
      kBootGdt, {reinterpret_cast<const uint8_t*>(gdt.data()), sizeof(gdt)}, "boot GDT"));
  // An empty IDT: any exception before the kernel loads its own triple-faults visibly.
  VIREO_TRY_STATUS(memory.WriteOrFail(kBootIdt, std::array<uint8_t, 8>{}, "boot IDT"));
  if (mode != CpuMode::kLong64) return {};

  // PML4[0] → PDPT; PDPT[0..3] → four page directories of 2 MiB pages: 0-4 GiB identity.
  VIREO_TRY_STATUS(memory.WriteOrFail(kPml4, AsU8(kPdpt | kPtePresent | kPteWrite), "PML4"));
  for (uint64_t i = 0; i < 4; ++i) {
    uint64_t pdpte = (kPageDirs + i * 0x1000) | kPtePresent | kPteWrite;
    VIREO_TRY_STATUS(memory.WriteOrFail(kPdpt + i * 8, AsU8(pdpte), "PDPT"));
  }
  auto dirs = memory.Span(kPageDirs, 4 * 0x1000);
  if (!dirs) return Fail("guest RAM does not cover the boot page tables at {:#x}", kPageDirs);
  for (uint64_t i = 0; i < 4 * 512; ++i) {
    uint64_t pde = (i << 21) | kPtePresent | kPteWrite | kPtePageSize;
    std::memcpy(dirs->data() + i * 8, &pde, 8);
  }
  return {};
}

accel::SpecialRegisters BootSpecialRegisters(const accel::SpecialRegisters& reset_state,
                                             CpuMode mode) {
  accel::SpecialRegisters s = reset_state;
  const bool long_mode = mode == CpuMode::kLong64;
  s.cs = SegmentFromDescriptor(long_mode ? kGdtCode64 : kGdtCode32, kCodeSelector);
  accel::Segment data = SegmentFromDescriptor(kGdtData, kDataSelector);
  s.ds = s.es = s.fs = s.gs = s.ss = data;
  s.gdt = {kBootGdt, 4 * 8 - 1};
  s.idt = {kBootIdt, 7};
  // A busy 64-bit TSS descriptor cache, as VMX requires for entry; never used by the guest.
  s.tr.type = 11;
  s.tr.present = true;
  s.tr.limit = 0xffff;
  s.tr.s = false;
  s.ldt.unusable = false;
  s.ldt.type = 2;
  s.ldt.present = true;
  s.cr0 = kCr0Pe | kCr0Et;
  s.cr4 = 0;
  s.efer = 0;
  if (long_mode) {
    s.cr3 = kPml4;
    s.cr4 |= kCr4Pae;
    s.cr0 |= kCr0Pg;
    s.efer |= kEferLme | kEferLma;
  }
  return s;
}

Status SetupCpuMsrs(accel::Vcpu& vcpu) {
  constexpr uint32_t kSysenterCs = 0x174, kSysenterEsp = 0x175, kSysenterEip = 0x176;
  constexpr uint32_t kStar = 0xc0000081, kLstar = 0xc0000082, kCstar = 0xc0000083;
  constexpr uint32_t kSyscallMask = 0xc0000084, kKernelGsBase = 0xc0000102;
  constexpr uint32_t kMiscEnable = 0x1a0, kMtrrDefType = 0x2ff;
  constexpr uint64_t kMiscEnableFastStrings = 1;
  constexpr uint64_t kMtrrEnable = 1ull << 11, kMemTypeWb = 6;
  const accel::MsrEntry msrs[] = {
      {kSysenterCs, 0},
      {kSysenterEsp, 0},
      {kSysenterEip, 0},
      {kStar, 0},
      {kLstar, 0},
      {kCstar, 0},
      {kSyscallMask, 0},
      {kKernelGsBase, 0},
      {kMiscEnable, kMiscEnableFastStrings},
      {kMtrrDefType, kMtrrEnable | kMemTypeWb},
  };
  return vcpu.SetMsrs(msrs);
}

Status SetupBootCpu(accel::Vcpu& vcpu, const EntryState& entry) {
  accel::SpecialRegisters reset = VIREO_TRY(vcpu.GetSpecialRegisters());
  VIREO_TRY_STATUS(vcpu.SetSpecialRegisters(BootSpecialRegisters(reset, entry.mode)));
  accel::Registers regs;
  regs.rip = entry.rip;
  regs.rsi = entry.rsi;
  regs.rbx = entry.rbx;
  regs.rax = entry.rax;
  regs.rsp = kBootStackTop;
  regs.rbp = kBootStackTop;
  regs.rflags = 0x2;  // interrupts off until the kernel has an IDT
  return vcpu.SetRegisters(regs);
}

}  // namespace vireo::x86
