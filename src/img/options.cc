#include "img/options.h"

#include <cmath>
#include <vector>

#include "base/size_parse.h"

namespace vireo::img {
namespace {

using block::ImageFormat;
using block::qcow2::CompressionType;

Result<bool> ParseBool(std::string_view key, std::string_view value) {
  if (value == "on" || value == "true" || value == "yes") return true;
  if (value == "off" || value == "false" || value == "no") return false;
  return Fail("-o {}={}: expected on or off", key, value);
}

// The keys each format takes, for the "unknown option" message.
constexpr std::string_view kRawKeys = "size, preallocation";
constexpr std::string_view kQcow2Keys =
    "size, cluster_size, compression_type, compat, lazy_refcounts, backing_file, backing_fmt, "
    "refcount_bits, extended_l2, preallocation";

Status ApplyQcow2Key(CreateSettings& s, std::string_view key, std::string_view value) {
  auto& q = s.qcow2;
  if (key == "cluster_size") {
    uint64_t bytes = VIREO_TRY(ParseImgSize(value));
    if (bytes < 512 || bytes > (2u << 20) || (bytes & (bytes - 1)) != 0) {
      return Fail("-o cluster_size={}: must be a power of two between 512 and 2M (e.g. 64k)",
                  value);
    }
    q.cluster_size = static_cast<uint32_t>(bytes);
  } else if (key == "compression_type") {
    if (value == "zlib") {
      q.compression = CompressionType::kZlib;
    } else if (value == "zstd") {
      q.compression = CompressionType::kZstd;
    } else {
      return Fail("-o compression_type={}: expected zlib or zstd", value);
    }
  } else if (key == "compat") {
    if (value == "0.10" || value == "v2") {
      q.version = 2;
    } else if (value == "1.1" || value == "v3") {
      q.version = 3;
    } else {
      return Fail("-o compat={}: expected 0.10 or 1.1", value);
    }
  } else if (key == "lazy_refcounts") {
    q.lazy_refcounts = VIREO_TRY(ParseBool(key, value));
  } else if (key == "backing_file") {
    q.backing_file = std::string(value);
  } else if (key == "backing_fmt") {
    VIREO_TRY(ParseFormatOption(value, "-o backing_fmt"));
    q.backing_format = std::string(value);
  } else if (key == "refcount_bits") {
    if (value != "16") {
      return Fail("-o refcount_bits={}: Vireo writes 16-bit refcounts only; leave it out", value);
    }
  } else if (key == "extended_l2") {
    if (VIREO_TRY(ParseBool(key, value))) {
      return Fail("-o extended_l2=on: Vireo does not support subcluster allocation; leave it out");
    }
  } else {
    return Fail("-o {}: unknown option for qcow2 (known: {})", key, kQcow2Keys);
  }
  return {};
}

}  // namespace

std::string JoinOptionTexts(const std::vector<std::string>& texts) {
  std::string out;
  for (const auto& text : texts) {
    if (text.empty()) continue;
    if (!out.empty()) out += ',';
    out += text;
  }
  return out;
}

Result<CreateSettings> ParseCreateOptions(std::string_view text, ImageFormat format) {
  CreateSettings s;
  std::vector<std::string> seen;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return Fail("-o {}: expected KEY=VALUE (e.g. -o cluster_size=64k)", item);
    }
    std::string_view key = item.substr(0, eq);
    std::string_view value = item.substr(eq + 1);
    for (const auto& k : seen) {
      if (k == key) return Fail("-o {}: given twice", key);
    }
    seen.emplace_back(key);
    if (key == "size") {
      s.size = VIREO_TRY(ParseImgSize(value));
      s.size_given = true;
    } else if (key == "preallocation") {
      if (value != "off") {
        return Fail("-o preallocation={}: Vireo creates sparse images only; leave it out", value);
      }
    } else if (format == ImageFormat::kQcow2) {
      VIREO_TRY_STATUS(ApplyQcow2Key(s, key, value));
    } else {
      return Fail("-o {}: unknown option for {} (known: {})", key, block::ImageFormatName(format),
                  kRawKeys);
    }
  }
  if (s.qcow2.version == 2 && s.qcow2.compression == CompressionType::kZstd) {
    return Fail("-o compression_type=zstd needs compat=1.1 (qcow2 version 3)");
  }
  if (s.qcow2.version == 2 && s.qcow2.lazy_refcounts) {
    return Fail("-o lazy_refcounts=on needs compat=1.1 (qcow2 version 3)");
  }
  return s;
}

Result<uint64_t> ParseImgSize(std::string_view text) {
  // qemu-img accepts a trailing "b" for bytes; ParseSize knows "B" already.
  return ParseSize(text, /*default_unit_mib=*/false);
}

Result<uint64_t> ParseResizeSize(std::string_view text, uint64_t current) {
  if (text.empty()) return Fail("missing size: give e.g. 10G, +1G or -512M");
  char sign = text.front();
  if (sign != '+' && sign != '-') return ParseImgSize(text);
  uint64_t delta = VIREO_TRY(ParseImgSize(text.substr(1)));
  if (sign == '+') {
    if (delta > UINT64_MAX - current) return Fail("size {}: too large", text);
    return current + delta;
  }
  if (delta >= current) {
    return Fail("size {}: the new size must be positive (the image has {} bytes)", text, current);
  }
  return current - delta;
}

std::string HumanSize(uint64_t bytes) {
  static constexpr const char* kSuffixes[] = {"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"};
  // As qemu's size_to_str: the exponent of bytes * 1024 / 1000 picks the unit, so 1000 KiB
  // already prints as 0.977 MiB rather than 1e+03 KiB.
  int exponent = 0;
  std::frexp(static_cast<double>(bytes) / (1000.0 / 1024.0), &exponent);
  int unit = std::max(0, (exponent - 1) / 10);
  unit = std::min(unit, 6);
  double value = static_cast<double>(bytes) / static_cast<double>(1ull << (unit * 10));
  return fmt::format("{} {}B", fmt::format("{:.3g}", value), kSuffixes[unit]);
}

Result<ImageFormat> ParseFormatOption(std::string_view name, std::string_view option) {
  if (name.empty()) return ImageFormat::kAuto;
  auto format = block::ParseImageFormat(name);
  if (!format || *format == ImageFormat::kAuto) {
    return Fail("{} {}: unknown image format (use raw or qcow2)", option, name);
  }
  return *format;
}

}  // namespace vireo::img
