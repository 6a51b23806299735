// Little-endian loads and stores on byte spans, for parsing guest and file data
// without unaligned or aliasing casts.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>

namespace vireo {

template <typename T>
requires std::is_trivially_copyable_v<T> T LoadLe(std::span<const uint8_t> bytes,
                                                  size_t offset = 0) {
  T value{};
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;  // x86-64 hosts only: little-endian already.
}

template <typename T>
requires std::is_trivially_copyable_v<T>
void StoreLe(std::span<uint8_t> bytes, size_t offset, T value) {
  std::memcpy(bytes.data() + offset, &value, sizeof(T));
}

// Bytes of a trivially copyable object, for building tables in host memory.
template <typename T>
requires std::is_trivially_copyable_v<T> std::span<const uint8_t> AsBytes(const T& object) {
  return {reinterpret_cast<const uint8_t*>(&object), sizeof(T)};
}

// Overflow-safe "does [offset, offset+len) fit in size".
constexpr bool RangeFits(uint64_t offset, uint64_t len, uint64_t size) {
  return offset <= size && len <= size - offset;
}

}  // namespace vireo
