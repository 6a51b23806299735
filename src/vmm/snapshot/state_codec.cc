#include "vmm/snapshot/state_codec.h"

#include <fmt/format.h>

namespace vireo::snapshot {

void StateWriter::Bytes(std::span<const uint8_t> data) {
  U32(static_cast<uint32_t>(data.size()));
  bytes_.insert(bytes_.end(), data.begin(), data.end());
}

void StateWriter::String(std::string_view text) {
  Bytes({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

uint64_t StateReader::Le(int n) {
  if (!ok()) return 0;
  if (remaining() < static_cast<size_t>(n)) {
    error_ =
        fmt::format("truncated: needed {} more bytes at offset {}, {} left", n, pos_, remaining());
    pos_ = data_.size();
    return 0;
  }
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<uint64_t>(data_[pos_ + i]) << (8 * i);
  pos_ += static_cast<size_t>(n);
  return v;
}

bool StateReader::Bool() {
  const uint8_t v = U8();
  if (v > 1) Invalid(fmt::format("a flag holds {} (not 0 or 1) at offset {}", v, pos_ - 1));
  return v == 1;
}

std::vector<uint8_t> StateReader::Bytes(size_t max) {
  const uint32_t n = U32();
  if (!ok()) return {};
  if (n > max) {
    Invalid(
        fmt::format("a field of {} bytes at offset {} exceeds its limit of {}", n, pos_ - 4, max));
    return {};
  }
  if (remaining() < n) {
    Invalid(fmt::format("truncated: a field of {} bytes at offset {}, {} left", n, pos_ - 4,
                        remaining()));
    return {};
  }
  std::vector<uint8_t> out(data_.begin() + static_cast<std::ptrdiff_t>(pos_),
                           data_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
  pos_ += n;
  return out;
}

std::string StateReader::String(size_t max) {
  auto bytes = Bytes(max);
  return std::string(bytes.begin(), bytes.end());
}

size_t StateReader::Count(size_t max, std::string_view what) {
  const uint32_t n = U32();
  if (ok() && n > max) {
    Invalid(fmt::format("{} {} (more than the limit of {})", n, what, max));
    return 0;
  }
  return ok() ? n : 0;
}

void StateReader::Invalid(std::string_view reason) {
  if (ok()) error_ = std::string(reason);
  pos_ = data_.size();
}

Status StateReader::Finish(std::string_view what) const {
  if (!ok()) return Fail("{}: {}", what, error_);
  if (remaining() != 0)
    return Fail("{}: {} unexpected bytes after the last field", what, remaining());
  return {};
}

}  // namespace vireo::snapshot
