// Accelerator-neutral x86-64 vCPU state. The KVM backend converts to and from
// kvm_regs/kvm_sregs; the software CPU (a later issue) uses these directly, so boot code
// and snapshots work the same on both.
#pragma once

#include <cstdint>

namespace vireo::accel {

struct Registers {
  uint64_t rax = 0, rbx = 0, rcx = 0, rdx = 0, rsi = 0, rdi = 0, rsp = 0, rbp = 0;
  uint64_t r8 = 0, r9 = 0, r10 = 0, r11 = 0, r12 = 0, r13 = 0, r14 = 0, r15 = 0;
  uint64_t rip = 0;
  uint64_t rflags = 0x2;  // bit 1 is always set
};

// A segment register with its hidden (descriptor cache) part.
struct Segment {
  uint64_t base = 0;
  uint32_t limit = 0;
  uint16_t selector = 0;
  uint8_t type = 0;
  bool present = false;
  uint8_t dpl = 0;
  bool db = false;  // default operand size (32-bit)
  bool s = false;   // code/data (not system)
  bool l = false;   // 64-bit code
  bool g = false;   // 4 KiB granularity
  bool avl = false;
  bool unusable = false;
};

struct DescriptorTable {
  uint64_t base = 0;
  uint16_t limit = 0;
};

struct SpecialRegisters {
  Segment cs, ds, es, fs, gs, ss, tr, ldt;
  DescriptorTable gdt, idt;
  uint64_t cr0 = 0, cr2 = 0, cr3 = 0, cr4 = 0, cr8 = 0;
  uint64_t efer = 0;
  uint64_t apic_base = 0;
};

struct MsrEntry {
  uint32_t index = 0;
  uint64_t value = 0;
};

struct CpuidEntry {
  uint32_t function = 0;
  uint32_t index = 0;
  uint32_t flags = 0;  // KVM_CPUID_FLAG_SIGNIFCANT_INDEX when index matters
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

}  // namespace vireo::accel
