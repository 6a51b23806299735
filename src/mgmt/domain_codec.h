// Definition text <-> DomainDef: Vireo's own JSON (or TOML) format and libvirt domain XML
// (the subset docs/management.md lists). Parsing collects what Vireo does not support as
// warnings (each names the element or key); with `strict` the first one is an error instead.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/result.h"
#include "mgmt/domain.h"

namespace vireo::mgmt {

struct ParsedDomain {
  DomainDef def;
  std::vector<std::string> warnings;  // "unsupported element /domain/devices/graphics"
};

// Vireo JSON (docs/management.md): {"name", "memory": "256M" | bytes, "vcpus", "kernel", ...}.
Result<ParsedDomain> ParseDomainJson(std::string_view text, bool strict);
// The same from an already parsed document (the TOML reader converts to one).
Result<ParsedDomain> ParseDomainJsonValue(const nlohmann::json& doc, bool strict);
nlohmann::json DomainToJson(const DomainDef& def);

// libvirt <domain type='kvm'> XML.
Result<ParsedDomain> ParseDomainXml(std::string_view text, bool strict);
std::string DomainToXml(const DomainDef& def);

// Picks the codec by the first non-blank character: '<' is XML, '{' is JSON, anything else
// is TOML (domain_toml.h).
Result<ParsedDomain> ParseDomain(std::string_view text, bool strict);

}  // namespace vireo::mgmt
