// Embeds the default guest ELF (VIREO_DEFAULT_GUEST_ELF, set by CMake) in .rodata.
  .section .rodata.vireo_default_guest, "a"
  .balign 16
  .global vireo_default_guest_start
  .global vireo_default_guest_end
vireo_default_guest_start:
  .incbin VIREO_DEFAULT_GUEST_ELF
vireo_default_guest_end:
  .section .note.GNU-stack, "", @progbits
