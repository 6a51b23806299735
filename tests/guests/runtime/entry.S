// Boot entries for the three protocols Vireo loads, the GDT and the identity page tables.
//
//   linux_entry64  ELF e_entry: 64-bit Linux boot protocol, rsi = boot_params.
//   pvh_entry32    XEN_ELFNOTE_PHYS32_ENTRY: 32-bit flat PM, paging off, ebx = hvm_start_info.
//   mb_entry32     multiboot v1 a.out-kludge entry: eax = 0x2BADB002, ebx = multiboot info.
//   ap_entry32     where the AP trampoline (trampoline.S) lands after leaving real mode.
//
// All paths switch to this image's own GDT and page tables: the tables are static data (built
// by the assembler), so no CPL0 loop is needed, and every level has U/S set so CPL3 code can run.

#define BOOT_LINUX 1
#define BOOT_PVH 2
#define BOOT_MULTIBOOT 3

#define KERNEL_CS32 0x08
#define KERNEL_CS64 0x10
#define KERNEL_DS 0x18

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00010002  // bit 1: memory info, bit 16: a.out kludge address fields
#define MB_CHECKSUM 0xE4514FFC  // -(MB_MAGIC + MB_FLAGS) mod 2^32

// Multiboot spec 3.1.1: the header, 4-byte aligned in the first 8192 bytes of the file.
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

// Xen public/elfnote.h: XEN_ELFNOTE_PHYS32_ENTRY (18), desc = the 32-bit physical entry.
// Like Linux, the desc is pointer-sized (8 bytes); readers that take 4 or 8 bytes agree.
.section .note.Xen, "a"
.balign 4
  .long 4   // namesz
  .long 8   // descsz
  .long 18  // type
  .asciz "Xen"
  .quad pvh_entry32

// Enables PAE + long mode + paging from 32-bit flat protected mode, then far-jumps to `target`.
.macro ENTER_LONG_MODE target
  movl %cr4, %eax
  orl $0x20, %eax  // CR4.PAE
  movl %eax, %cr4
  movl $rt_pml4, %eax
  movl %eax, %cr3
  movl $0xC0000080, %ecx  // IA32_EFER
  rdmsr
  orl $0x100, %eax  // LME
  wrmsr
  movl %cr0, %eax
  orl $0x80000001, %eax  // PG | PE
  movl %eax, %cr0
  ljmp $KERNEL_CS64, $\target
.endm

.macro LOAD_DATA_SEGMENTS
  movw $KERNEL_DS, %ax
  movw %ax, %ds
  movw %ax, %es
  movw %ax, %ss
  movw %ax, %fs
  movw %ax, %gs
.endm

.section .text.boot, "ax"
.code32
.globl pvh_entry32
pvh_entry32:
  cli
  movl $BOOT_PVH, rt_boot_protocol
  movl %ebx, rt_boot_info_ptr
  jmp common32

.globl mb_entry32
mb_entry32:
  cli
  movl $BOOT_MULTIBOOT, rt_boot_protocol
  movl %ebx, rt_boot_info_ptr
  movl %eax, rt_boot_magic

common32:
  cld
  lgdt rt_gdt_ptr
  ljmp $KERNEL_CS32, $1f
1:
  LOAD_DATA_SEGMENTS
  movl $rt_boot_stack_top, %esp
  ENTER_LONG_MODE long_entry64

.globl ap_entry32
ap_entry32:
  LOAD_DATA_SEGMENTS
  movl rt_ap_stack_top, %esp
  ENTER_LONG_MODE ap_entry64

.code64
.globl linux_entry64
linux_entry64:
  cli
  cld
  movl $BOOT_LINUX, rt_boot_protocol(%rip)
  movq %rsi, rt_boot_info_ptr(%rip)
  lgdt rt_gdt_ptr(%rip)
  movl $rt_pml4, %eax
  movq %rax, %cr3
  movl $rt_boot_stack_top, %esp
  pushq $KERNEL_CS64
  pushq $long_entry64
  lretq

long_entry64:
  LOAD_DATA_SEGMENTS
  movl $rt_boot_stack_top, %esp
  xorl %ebp, %ebp
  // Zero .bss here: the multiboot and ELF loaders do it too, but a reset re-enters with old RAM.
  movl $__bss_start, %edi
  movl $__bss_end, %ecx
  subl %edi, %ecx
  xorl %eax, %eax
  rep stosb
  call rt_main64
2:
  cli
  hlt
  jmp 2b

ap_entry64:
  LOAD_DATA_SEGMENTS
  movq rt_ap_stack_top(%rip), %rsp
  xorl %ebp, %ebp
  call rt_ap_main64
3:
  cli
  hlt
  jmp 3b

.section .data
.globl rt_boot_protocol, rt_boot_info_ptr, rt_boot_magic, rt_ap_stack_top
.balign 8
rt_boot_protocol: .quad 0
rt_boot_info_ptr: .quad 0
rt_boot_magic: .quad 0
rt_ap_stack_top: .quad 0

// Selectors: 0x08 code32, 0x10 code64, 0x18 data, 0x20 user data, 0x28 user code64, 0x30 TSS.
.balign 16
.globl rt_gdt, rt_gdt_ptr
rt_gdt:
  .quad 0
  .quad 0x00cf9a000000ffff
  .quad 0x00af9a000000ffff
  .quad 0x00cf92000000ffff
  .quad 0x00cff2000000ffff
  .quad 0x00affa000000ffff
  .quad 0, 0  // TSS descriptor, filled in by usermode.cc
rt_gdt_end:
.balign 8
rt_gdt_ptr:
  .word rt_gdt_end - rt_gdt - 1
  .quad rt_gdt

// Identity map of the first 4 GiB in 2 MiB pages; P | RW | US on every level.
// The top GiB (MMIO hole: IOAPIC, LAPIC) is mapped uncached (PCD | PWT).
.balign 4096
.globl rt_pml4
rt_pml4:
  .quad rt_pdpt + 0x7
  .fill 511, 8, 0
rt_pdpt:
  .quad rt_pd + 0x7
  .quad rt_pd + 0x1000 + 0x7
  .quad rt_pd + 0x2000 + 0x7
  .quad rt_pd + 0x3000 + 0x7
  .fill 508, 8, 0
rt_pd:
  .set addr, 0
  .rept 1536
  .quad addr + 0x87
  .set addr, addr + 0x200000
  .endr
  .rept 512
  .quad addr + 0x9f
  .set addr, addr + 0x200000
  .endr

.section .stack, "aw", @nobits
.balign 16
  .skip 16384
.globl rt_boot_stack_top
rt_boot_stack_top:
