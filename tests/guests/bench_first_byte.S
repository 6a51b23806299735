// bench_first_byte: the smallest bootable guest, for bench/run.sh's start-up case. Its very
// first instruction sequence writes '!' to COM1's transmit register and then writes 0 to the
// debug-exit port (0xf4), so the host sees one serial byte as soon as guest code runs and the
// VMM exits with status 1 right after. No runtime: nothing runs before the byte.
//
// One ELF, three entries (like the runtime's entry.S, and linked with the same linker script):
// the ELF entry (Linux 64-bit), the Xen PVH note (32-bit flat, paging off) and the multiboot v1
// header. The code below encodes identically in 32-bit and 64-bit mode (0x66-prefixed 16-bit
// moves, 8/32-bit out, xor), so all three entries share it. The UART is used uninitialised:
// a THR write with DLAB=0 (the reset state) transmits on both Vireo's 8250 and QEMU's.
#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010002
#define MB_CHECKSUM 0xE4514FFC  // -(MB_MAGIC + MB_FLAGS) mod 2^32

.section .multiboot, "a"
.balign 4
mb_header:
  .long MB_MAGIC
  .long MB_FLAGS
  .long MB_CHECKSUM
  .long mb_header         // header_addr
  .long __image_start     // load_addr
  .long __image_load_end  // load_end_addr
  .long __image_end       // bss_end_addr
  .long mb_entry32        // entry_addr

// Xen public/elfnote.h: XEN_ELFNOTE_PHYS32_ENTRY (18), pointer-sized desc.
.section .note.Xen, "a"
.balign 4
  .long 4
  .long 8
  .long 18
  .asciz "Xen"
  .quad pvh_entry32

.section .text.boot, "ax"
.code32
.globl linux_entry64, pvh_entry32, mb_entry32
linux_entry64:
pvh_entry32:
mb_entry32:
  movw $0x3f8, %dx
  movb $'!', %al
  outb %al, %dx
  movw $0xf4, %dx
  xorl %eax, %eax
  outl %eax, %dx
1:
  cli
  hlt
  jmp 1b
