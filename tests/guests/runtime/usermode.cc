#include "usermode.h"

#include "io.h"

extern "C" uint64_t rt_gdt[];
extern "C" char rt_user_return[];
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
constexpr uint32_t kMsrEfer = 0xc0000080;
constexpr uint32_t kMsrStar = 0xc0000081;
constexpr uint32_t kMsrLstar = 0xc0000082;
constexpr uint32_t kMsrFmask = 0xc0000084;
constexpr uint64_t kEferSce = 1;

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

  // CPUID.80000001h:EDX[11]: syscall/sysret in 64-bit mode. Without it EFER.SCE may #GP.
  uint32_t eax = 0x80000000, ebx, ecx, edx;
  asm volatile("cpuid" : "+a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx));
  if (eax < 0x80000001) return;
  eax = 0x80000001;
  ecx = 0;
  asm volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
  if (!(edx & (1u << 11))) return;
  rt_user_use_syscall = 1;

  // SDM Vol. 3A 5.8.8: syscall takes CS from STAR[47:32] (SS = +8); sysret would use
  // STAR[63:48] + 16 / + 8, i.e. 0x2b / 0x23 with base 0x18. FMASK clears IF, TF and DF.
  Wrmsr(kMsrEfer, Rdmsr(kMsrEfer) | kEferSce);
  Wrmsr(kMsrStar, uint64_t{0x0018} << 48 | uint64_t{0x0010} << 32);
  Wrmsr(kMsrLstar, reinterpret_cast<uint64_t>(rt_user_return));
  Wrmsr(kMsrFmask, 0x700);
}

bool UserReturnUsesSyscall() { return rt_user_use_syscall != 0; }

uint64_t RunAtCpl3(UserFunction fn, uint64_t arg) {
  return rt_enter_user(fn, arg, reinterpret_cast<uint64_t>(user_stack + sizeof(user_stack)));
}

}  // namespace rt
