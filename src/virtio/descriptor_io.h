// Copying bytes out of and into a validated DescriptorChain (virtio 1.2, 2.7.4: the
// device reads the device-readable buffers and writes the device-writable ones, in order).
// Every copy goes through GuestMemory's checked Read/Write; nothing allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <type_traits>

#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace vireo::virtio {

// Reads the chain's readable buffers as one byte stream.
class ChainReader {
 public:
  ChainReader(const GuestMemory& memory, const DescriptorChain& chain);

  // Copies up to out.size() bytes; returns how many were copied (short at the end).
  size_t Read(std::span<uint8_t> out);
  // Reads exactly sizeof(T) bytes, or nothing (and returns nullopt) if fewer remain.
  template <typename T>
  requires std::is_trivially_copyable_v<T> std::optional<T> ReadObj() {
    if (remaining() < sizeof(T)) return std::nullopt;
    T value;
    if (Read({reinterpret_cast<uint8_t*>(&value), sizeof(T)}) != sizeof(T)) return std::nullopt;
    return value;
  }
  // Skips up to `len` bytes; returns how many were skipped.
  size_t Skip(size_t len);
  size_t remaining() const { return remaining_; }
  size_t bytes_read() const { return bytes_read_; }

 private:
  // Moves `len` bytes on, copying them to `out` unless it is null.
  size_t Advance(size_t len, uint8_t* out);

  const GuestMemory& memory_;
  std::span<const ChainBuffer> buffers_;
  size_t index_ = 0;   // current buffer
  size_t offset_ = 0;  // within it
  size_t remaining_ = 0;
  size_t bytes_read_ = 0;
};

// Writes the chain's writable buffers as one byte stream. bytes_written() is the length
// to report in the used element (2.7.8).
class ChainWriter {
 public:
  ChainWriter(const GuestMemory& memory, const DescriptorChain& chain);

  // Copies up to data.size() bytes; returns how many were copied (short when full).
  size_t Write(std::span<const uint8_t> data);
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  bool WriteObj(const T& value) {
    if (remaining() < sizeof(T)) return false;
    return Write({reinterpret_cast<const uint8_t*>(&value), sizeof(T)}) == sizeof(T);
  }
  size_t remaining() const { return remaining_; }
  size_t bytes_written() const { return bytes_written_; }

 private:
  const GuestMemory& memory_;
  std::span<const ChainBuffer> buffers_;
  size_t index_ = 0;
  size_t offset_ = 0;
  size_t remaining_ = 0;
  size_t bytes_written_ = 0;
};

}  // namespace vireo::virtio
