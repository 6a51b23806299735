// Interrupt entry stubs: one 16-byte stub per vector, so idt.cc finds vector v's stub at
// rt_isr_stubs + 16 * v. Each pushes a dummy error code (where the CPU does not push one) and
// the vector, then isr_common saves the GPRs and calls rt_interrupt_dispatch(Frame*).
.section .text
.code64

.balign 16
.globl rt_isr_stubs
rt_isr_stubs:
.set vec, 0
.rept 256
  .balign 16
  // Vectors with a CPU-pushed error code: #DF, #TS, #NP, #SS, #GP, #PF, #AC, #CP, #VC, #SX.
  .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
  .else
  pushq $0
  .endif
  pushq $vec
  jmp isr_common
  .set vec, vec + 1
.endr

isr_common:
  pushq %rax
  pushq %rbx
  pushq %rcx
  pushq %rdx
  pushq %rsi
  pushq %rdi
  pushq %rbp
  pushq %r8
  pushq %r9
  pushq %r10
  pushq %r11
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, %rdi
  cld
  call rt_interrupt_dispatch
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %r11
  popq %r10
  popq %r9
  popq %r8
  popq %rbp
  popq %rdi
  popq %rsi
  popq %rdx
  popq %rcx
  popq %rbx
  popq %rax
  addq $16, %rsp
  iretq
