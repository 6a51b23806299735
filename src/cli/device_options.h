// Parses device options of `vireo run` ("path=disk.img,readonly=on,serial=abc") into
// validated configs. Every mistake (unknown key, bad value, missing required key) is one
// line naming the option and the key.
#pragma once

#include <map>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "vmm/vm_config.h"

namespace vireo::cli {

// "k=v,k2=v2" → map. Keys must be in `allowed`; duplicates are errors.
Result<std::map<std::string, std::string>> ParseKeyValues(
    std::string_view text, std::string_view option, std::span<const std::string_view> allowed);

// on/off, yes/no, true/false, 1/0.
Result<bool> ParseOnOff(std::string_view value, std::string_view what);

Result<DiskConfig> ParseDiskOption(std::string_view text);
Result<NetConfig> ParseNetOption(std::string_view text);
Result<VirtioTransport> ParseTransport(std::string_view text);

}  // namespace vireo::cli
