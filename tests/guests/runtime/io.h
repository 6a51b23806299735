// Port I/O, MMIO and a few privileged instructions, as inline asm wrappers.
#pragma once

#include <stdint.h>

namespace rt {

inline void Outb(uint16_t port, uint8_t v) { asm volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
inline void Outw(uint16_t port, uint16_t v) { asm volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
inline void Outl(uint16_t port, uint32_t v) { asm volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
inline uint8_t Inb(uint16_t port) {
  uint8_t v;
  asm volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline uint16_t Inw(uint16_t port) {
  uint16_t v;
  asm volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}
inline uint32_t Inl(uint16_t port) {
  uint32_t v;
  asm volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
  return v;
}

// MMIO through volatile pointers: the identity map makes physical = virtual.
template <typename T>
inline T MmioRead(uint64_t addr) {
  return *reinterpret_cast<volatile T*>(addr);
}
template <typename T>
inline void MmioWrite(uint64_t addr, T v) {
  *reinterpret_cast<volatile T*>(addr) = v;
}

inline uint64_t Rdtsc() {
  uint32_t lo, hi;
  asm volatile("rdtsc" : "=a"(lo), "=d"(hi));
  return (uint64_t{hi} << 32) | lo;
}
inline uint64_t Rdmsr(uint32_t msr) {
  uint32_t lo, hi;
  asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
  return (uint64_t{hi} << 32) | lo;
}
inline void Wrmsr(uint32_t msr, uint64_t v) {
  asm volatile("wrmsr" ::"c"(msr), "a"(uint32_t(v)), "d"(uint32_t(v >> 32)));
}
inline void Cli() { asm volatile("cli" ::: "memory"); }
inline void Sti() { asm volatile("sti" ::: "memory"); }
inline void Pause() { asm volatile("pause" ::: "memory"); }
// sti takes effect after the next instruction, so "sti; hlt" cannot lose a wake-up.
inline void StiHlt() { asm volatile("sti; hlt" ::: "memory"); }
inline void Barrier() { asm volatile("" ::: "memory"); }

}  // namespace rt
