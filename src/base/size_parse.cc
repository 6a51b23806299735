#include "base/size_parse.h"

#include <cctype>
#include <charconv>
#include <string>

namespace vireo {

Result<uint64_t> ParseSize(std::string_view text, bool default_unit_mib) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end == text.data()) {
    return Fail("invalid size '{}': expected a number with an optional K, M, G or T suffix", text);
  }
  std::string suffix(end, text.data() + text.size());
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  int shift = 0;
  if (suffix.empty()) {
    shift = default_unit_mib ? 20 : 0;
  } else if (suffix == "B") {
    shift = 0;
  } else if (suffix == "K" || suffix == "KB" || suffix == "KIB") {
    shift = 10;
  } else if (suffix == "M" || suffix == "MB" || suffix == "MIB") {
    shift = 20;
  } else if (suffix == "G" || suffix == "GB" || suffix == "GIB") {
    shift = 30;
  } else if (suffix == "T" || suffix == "TB" || suffix == "TIB") {
    shift = 40;
  } else {
    return Fail("invalid size '{}': unknown unit '{}' (use K, M, G or T)", text, suffix);
  }
  if (shift > 0 && value > (UINT64_MAX >> shift)) return Fail("size '{}' is too large", text);
  return value << shift;
}

}  // namespace vireo
