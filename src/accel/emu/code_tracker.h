// CodeTracker: cross-modifying code between the vCPUs of one VM (SDM Vol. 3 8.1.3). Each
// vCPU's DecodeCache sees only its own stores; this shared table tells them about the
// others'. A vCPU marks a page before it decodes from it; a store by any vCPU to a marked
// page clears the mark and starts a new code generation; a vCPU that sees a new generation
// drops all its decodes. vCPUs look at each slice boundary and at the serializing
// instructions (CPUID, IRET, MOV CR) that the SDM's cross-modifying protocol has
// the executing CPU run before it jumps to new code.
//
// Marks are a hashed table, so a store to a page that shares a slot with a code page costs
// the vCPUs a re-decode, never a stale instruction. Only VMs with more than one vCPU have a
// tracker: one vCPU's own stores are handled by its DecodeCache alone.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace vireo::emu {

class CodeTracker {
 public:
  static constexpr size_t kSlots = 4096;

  void MarkCode(uint64_t page) {
    std::atomic<uint8_t>& mark = marks_[page % kSlots];
    if (!mark.load(std::memory_order_relaxed)) mark.store(1, std::memory_order_seq_cst);
  }
  void NoteWrite(uint64_t page) {
    std::atomic<uint8_t>& mark = marks_[page % kSlots];
    if (mark.load(std::memory_order_relaxed)) {
      mark.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
    }
  }
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  std::array<std::atomic<uint8_t>, kSlots> marks_{};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace vireo::emu
