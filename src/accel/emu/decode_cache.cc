#include "accel/emu/decode_cache.h"

#include <cstring>
#include <new>

namespace vireo::emu {
namespace {

template <typename T>
T* ZeroedArray(size_t n) {
  void* p = std::calloc(n, sizeof(T));
  if (p == nullptr) throw std::bad_alloc();  // set-up time, not the guest path
  return static_cast<T*>(p);
}

}  // namespace

DecodeCache::DecodeCache()
    : entries_(ZeroedArray<Entry>(kEntries)), generations_(ZeroedArray<uint32_t>(kPageSlots)) {}

const DecodedInsn* DecodeCache::Insert(uint64_t physical, CpuMode mode, const DecodedInsn& insn) {
  uint32_t& g = generations_[PageSlot(physical >> 12)];
  g |= 1;  // this page's slot now has decodes: a store to it must start a new generation
  Entry& e = entries_[Index(physical)];
  e.tag = Tag(physical, mode);
  e.generation = g;
  e.epoch = epoch_;
  e.insn = insn;
  return &e.insn;
}

void DecodeCache::ClearSlow() {
  // Tags only: an instruction's bytes stay as they are while its handler may be running.
  for (size_t i = 0; i < kEntries; ++i) entries_[i].tag = 0;
  std::memset(generations_.get(), 0, kPageSlots * sizeof(uint32_t));
  epoch_ = 1;
  ++clears_;
}

}  // namespace vireo::emu
