#include "devices/legacy/port80.h"

namespace vireo {

void Port80::Read(uint64_t, std::span<uint8_t> data) {
  if (data.empty()) return;
  for (auto& byte : data) byte = 0;
  data[0] = last_value();  // an 8-bit latch: wider reads see zeros above it
}

void Port80::Write(uint64_t, std::span<const uint8_t> data) {
  if (data.empty()) return;
  last_value_.store(data[0], std::memory_order_relaxed);
  write_count_.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace vireo
