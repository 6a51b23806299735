#include "cli/device_options.h"

#include <algorithm>
#include <array>

namespace vireo::cli {

Result<std::map<std::string, std::string>> ParseKeyValues(
    std::string_view text, std::string_view option, std::span<const std::string_view> allowed) {
  std::map<std::string, std::string> out;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return Fail("{}: '{}' should be KEY=VALUE", option, item);
    }
    std::string key(item.substr(0, eq));
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      std::string keys;
      for (auto k : allowed) keys += fmt::format("{}{}", keys.empty() ? "" : ", ", k);
      return Fail("{}: unknown key '{}' (known: {})", option, key, keys);
    }
    if (!out.emplace(key, std::string(item.substr(eq + 1))).second) {
      return Fail("{}: '{}' given twice", option, key);
    }
  }
  return out;
}

Result<bool> ParseOnOff(std::string_view value, std::string_view what) {
  if (value == "on" || value == "yes" || value == "true" || value == "1") return true;
  if (value == "off" || value == "no" || value == "false" || value == "0") return false;
  return Fail("{}: '{}' should be on or off", what, value);
}

Result<DiskConfig> ParseDiskOption(std::string_view text) {
  static constexpr std::array<std::string_view, 6> kKeys = {"path",  "readonly", "serial",
                                                            "cache", "discard",  "format"};
  auto kv = VIREO_TRY(ParseKeyValues(text, "--disk", kKeys));
  DiskConfig disk;
  auto path = kv.find("path");
  if (path == kv.end() || path->second.empty()) {
    return Fail("--disk {}: path=FILE is required", text);
  }
  disk.path = path->second;
  if (auto it = kv.find("readonly"); it != kv.end()) {
    disk.read_only = VIREO_TRY(ParseOnOff(it->second, "--disk readonly"));
  }
  if (auto it = kv.find("discard"); it != kv.end()) {
    disk.discard = VIREO_TRY(ParseOnOff(it->second, "--disk discard"));
  }
  if (auto it = kv.find("serial"); it != kv.end()) {
    // virtio-blk GET_ID returns 20 bytes (virtio 1.2, 5.2.6).
    if (it->second.size() > 20) {
      return Fail("--disk serial: '{}' is {} bytes, at most 20 fit", it->second, it->second.size());
    }
    disk.serial = it->second;
  }
  if (auto it = kv.find("format"); it != kv.end()) {
    auto format = block::ParseImageFormat(it->second);
    if (!format) return Fail("--disk format: {}", format.error().message);
    disk.format = *format;
  }
  if (auto it = kv.find("cache"); it != kv.end()) {
    if (it->second == "none") {
      disk.cache_none = true;
    } else if (it->second == "writeback") {
      disk.cache_none = false;
    } else {
      return Fail("--disk cache: '{}' should be none or writeback", it->second);
    }
  }
  return disk;
}

Result<NetConfig> ParseNetOption(std::string_view text) {
  static constexpr std::array<std::string_view, 2> kKeys = {"tap", "mac"};
  auto kv = VIREO_TRY(ParseKeyValues(text, "--net", kKeys));
  NetConfig net;
  auto tap = kv.find("tap");
  if (tap == kv.end() || tap->second.empty()) return Fail("--net {}: tap=NAME is required", text);
  // IFNAMSIZ is 16 including the NUL.
  if (tap->second.size() > 15) {
    return Fail("--net tap={}: interface names are at most 15 characters", tap->second);
  }
  net.tap = tap->second;
  if (auto it = kv.find("mac"); it != kv.end()) net.mac = it->second;
  return net;
}

Result<VirtioTransport> ParseTransport(std::string_view text) {
  if (text == "mmio") return VirtioTransport::kMmio;
  if (text == "pci") return VirtioTransport::kPci;
  return Fail("--transport {}: expected mmio or pci", text);
}

}  // namespace vireo::cli
