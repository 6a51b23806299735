#include "usermode.h"

#include "io.h"

extern "C" uint64_t rt_gdt[];
extern "C" uint8_t rt_user_use_syscall;
extern "C" uint64_t rt_enter_user(rt::UserFunction fn, uint64_t arg, uint64_t user_rsp);

namespace rt {

namespace {

// SDM Vol. 3A 7.7: the 64-bit TSS. No I/O bitmap (iomap_base past the limit).
struct __attribute__((packed)) Tss {
  uint32_t reserved0;
  uint64_t rsp[3];
  uint64_t reserved1;
  uint64_t ist[7];
  uint64_t reserved2;
  uint16_t reserved3;
  uint16_t iomap_base;
};
static_assert(sizeof(Tss) == 104);

alignas(16) Tss tss;

constexpr int kTssSlot = 6;  // selector 0x30
constexpr uint16_t kTssSelector = kTssSlot * 8;

__attribute__((section(".stack"), aligned(16))) uint8_t kernel_stack[16384];
__attribute__((section(".stack"), aligned(16))) uint8_t user_stack[65536];

}  // namespace

void UsermodeInit() {
  tss.rsp[0] = reinterpret_cast<uint64_t>(kernel_stack + sizeof(kernel_stack));
  tss.iomap_base = sizeof(Tss);
  uint64_t base = reinterpret_cast<uint64_t>(&tss);
  uint64_t limit = sizeof(Tss) - 1;
  // Available 64-bit TSS (type 9), present, DPL 0.
  rt_gdt[kTssSlot] = (limit & 0xffff) | (base & 0xffffff) << 16 | uint64_t{0x89} << 40 |
                     ((limit >> 16) & 0xf) << 48 | ((base >> 24) & 0xff) << 56;
  rt_gdt[kTssSlot + 1] = base >> 32;
  asm volatile("ltr %0" ::"r"(kTssSelector));

  // The way back from CPL3 is always the ud2 at rt_user_exit_ud2 (a #UD the handler in
  // idt.cc recognises), never syscall: on kvm_pvm, syscall from CPL3 reaches LSTAR without
  // switching to CPL0 (the guest then #GPs loading kernel segments), and `int n` raises #UD.
  // An exception is the one CPL3 -> CPL0 path every KVM, software-assisted or not, handles.
  rt_user_use_syscall = 0;
}

bool UserReturnUsesSyscall() { return rt_user_use_syscall != 0; }

uint64_t RunAtCpl3(UserFunction fn, uint64_t arg) {
  return rt_enter_user(fn, arg, reinterpret_cast<uint64_t>(user_stack + sizeof(user_stack)));
}

}  // namespace rt
