// CodeTracker: cross-modifying code between the vCPUs of one VM (SDM Vol. 3 8.1.3). Each
// vCPU's DecodeCache sees only its own stores; this shared table tells them about the
// others'. A vCPU marks a page before it decodes from it; a store by any vCPU to a marked
// page clears the mark and starts a new code generation; a vCPU that sees a new generation
// drops all its decodes. vCPUs look at each slice boundary and at the serializing
// instructions (CPUID, IRET, MOV CR) that the SDM's cross-modifying protocol has
// the executing CPU run before it jumps to new code.
//
// Marks are a table indexed by page number modulo kSlots (4 GiB of guest-physical pages, so
// a Linux guest's data pages do not share slots with its code pages: every such store made
// all vCPUs drop all their decodes), and a store to a page that shares a slot with a code
// page costs the vCPUs a re-decode, never a stale instruction. Only VMs with more than one
// vCPU have a tracker. A vCPU's own stores are handled by its DecodeCache: the generation it
// starts itself does not make it drop its decodes (Interpreter::NoteOwnWrite).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace vireo::emu {

class CodeTracker {
 public:
  static constexpr size_t kSlots = size_t{1} << 20;

  void MarkCode(uint64_t page) {
    std::atomic<uint8_t>& mark = marks_[page % kSlots];
    if (!mark.load(std::memory_order_relaxed)) mark.store(1, std::memory_order_seq_cst);
  }
  // A store to `page`. True when it started a new generation; *before is then the
  // generation it replaced.
  bool NoteWrite(uint64_t page, uint64_t* before = nullptr) {
    std::atomic<uint8_t>& mark = marks_[page % kSlots];
    if (mark.load(std::memory_order_relaxed)) {
      mark.store(0, std::memory_order_relaxed);
      const uint64_t old = generation_.fetch_add(1, std::memory_order_release);
      if (before) *before = old;
      return true;
    }
    return false;
  }
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

 private:
  std::array<std::atomic<uint8_t>, kSlots> marks_{};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace vireo::emu
