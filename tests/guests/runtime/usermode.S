// CPL3 round trip. rt_enter_user(fn, arg, user_rsp) saves the kernel context, iretq's to a CPL3
// trampoline that calls fn(arg) and returns its result with `syscall` (IA32_LSTAR points at
// rt_user_return, which restores the kernel context and returns the result to the caller).
// syscall rather than `int $0x80`: some software-assisted KVMs (kvm_pvm) only let CPL3 enter the
// kernel through syscall, exceptions and interrupts, and raise #UD for `int n`. Where CPUID does
// not offer syscall (a VMM that set no CPUID), the trampoline executes ud2 at rt_user_exit_ud2
// instead, and the #UD handler (idt.cc) recognises that address and returns here the same way.
#define USER_CS 0x2b
#define USER_DS 0x23
#define KERNEL_DS 0x18

.section .text
.code64
.globl rt_enter_user
rt_enter_user:
  pushq %rbx
  pushq %rbp
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  pushfq
  movq %rsp, saved_kernel_rsp(%rip)
  movq %rdi, %rbx  // fn, callee-saved across the iretq
  movq %rsi, %rdi  // arg
  pushq $USER_DS
  pushq %rdx
  pushq $0x202  // IF set, IOPL 0: CPL3 may not touch ports
  pushq $USER_CS
  leaq user_trampoline(%rip), %rax
  pushq %rax
  movw $USER_DS, %ax
  movw %ax, %ds
  movw %ax, %es
  iretq

user_trampoline:
  call *%rbx
  cmpb $0, rt_user_use_syscall(%rip)
  je rt_user_exit_ud2
  syscall
.globl rt_user_exit_ud2
rt_user_exit_ud2:
  ud2

.globl rt_user_return_from_trap
rt_user_return_from_trap:  // from the #UD handler: rdi = the user function's result
  movq %rdi, %rax
.globl rt_user_return
rt_user_return:  // syscall has set CS = 0x10, SS = 0x18, RCX = user RIP, R11 = user RFLAGS
  movw $KERNEL_DS, %dx
  movw %dx, %ds
  movw %dx, %es
  movw %dx, %ss
  movq saved_kernel_rsp(%rip), %rsp
  popfq
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbp
  popq %rbx
  ret

.section .data
.balign 8
saved_kernel_rsp: .quad 0
.globl rt_user_use_syscall
rt_user_use_syscall: .byte 0
