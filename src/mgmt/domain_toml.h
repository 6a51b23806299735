// Vireo's definition format written as TOML: the same keys as the JSON format
// (docs/management.md), read by the JSON reader after a TOML -> JSON conversion, so both
// formats accept and refuse exactly the same definitions with the same messages.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "mgmt/domain_codec.h"

namespace vireo::mgmt {

Result<ParsedDomain> ParseDomainToml(std::string_view text, bool strict);
std::string DomainToToml(const DomainDef& def);

}  // namespace vireo::mgmt
