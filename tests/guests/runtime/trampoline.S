// AP start-up trampoline (Intel SDM Vol. 3A 9.4.4 "MP initialization example").
// smp.cc copies it to a free page below 1 MiB and sends SIPI with that page's number, so the AP
// starts here in real mode with CS = page << 8, IP = 0. It loads the runtime's GDT, enters
// protected mode and far-jumps to ap_entry32 (entry.S) in the main image.
.section .rodata
.code16
.globl rt_ap_trampoline_start, rt_ap_trampoline_end
rt_ap_trampoline_start:
  cli
  cld
  movw %cs, %ax
  movw %ax, %ds
  lgdtl (trampoline_gdt_ptr - rt_ap_trampoline_start)
  movl %cr0, %eax
  orl $1, %eax  // CR0.PE
  movl %eax, %cr0
  ljmpl $0x08, $ap_entry32
.balign 8
trampoline_gdt_ptr:
  .word 0x3f  // eight slots: six descriptors plus the 16-byte TSS descriptor
  .long rt_gdt
rt_ap_trampoline_end:
.code64
