// A compact little-endian binary encoding for snapshot state. Fields are written in a fixed
// order with no tags: the whole state file has one format version (docs/snapshot-migration.md),
// so there is no per-field versioning to carry. Reads are bounds-checked and sticky: once a
// read runs past the end (or a length exceeds its bound) every later read returns zero and
// Finish() reports the first failure, so decoding code reads straight through without
// checking each field, and a hostile file cannot make it read out of bounds or allocate
// without limit.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vireo::snapshot {

class StateWriter {
 public:
  void U8(uint8_t v) { bytes_.push_back(v); }
  void Bool(bool v) { U8(v ? 1 : 0); }
  void U16(uint16_t v) { Le(v, 2); }
  void U32(uint32_t v) { Le(v, 4); }
  void U64(uint64_t v) { Le(v, 8); }
  void I64(int64_t v) { U64(static_cast<uint64_t>(v)); }
  // Length-prefixed (u32).
  void Bytes(std::span<const uint8_t> data);
  void String(std::string_view text);

  const std::vector<uint8_t>& bytes() const { return bytes_; }
  std::vector<uint8_t> Take() { return std::move(bytes_); }

 private:
  void Le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> bytes_;
};

class StateReader {
 public:
  explicit StateReader(std::span<const uint8_t> data) : data_(data) {}

  uint8_t U8() { return static_cast<uint8_t>(Le(1)); }
  // Anything but 0 or 1 is corruption.
  bool Bool();
  uint16_t U16() { return static_cast<uint16_t>(Le(2)); }
  uint32_t U32() { return static_cast<uint32_t>(Le(4)); }
  uint64_t U64() { return Le(8); }
  int64_t I64() { return static_cast<int64_t>(U64()); }
  // Length-prefixed; a length above `max` fails.
  std::vector<uint8_t> Bytes(size_t max);
  std::string String(size_t max);
  // An element count for a vector, checked against `max`.
  size_t Count(size_t max, std::string_view what);
  // Marks the stream bad with a reason (a value out of range, say).
  void Invalid(std::string_view reason);

  bool ok() const { return error_.empty(); }
  size_t remaining() const { return data_.size() - pos_; }
  // The first failure, or trailing bytes after the last field; `what` names the section.
  Status Finish(std::string_view what) const;

 private:
  uint64_t Le(int n);
  std::span<const uint8_t> data_;
  size_t pos_ = 0;
  std::string error_;
};

}  // namespace vireo::snapshot
