// Parses user-facing sizes such as "512M", "2G", "4096" (bytes) or "1KiB".
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"

namespace vireo {

// A bare number is MiB when default_unit_mib is set (as `--memory 512`), otherwise bytes.
Result<uint64_t> ParseSize(std::string_view text, bool default_unit_mib);

}  // namespace vireo
