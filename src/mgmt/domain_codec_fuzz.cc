// Fuzz target: domain definitions (libvirt XML, Vireo JSON or TOML) and network XML from
// hostile users. Any input must parse or fail cleanly; anything accepted must dump to XML,
// JSON and TOML that parse again to the same definition (dumpxml's round trip).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "mgmt/domain_codec.h"
#include "mgmt/domain_toml.h"
#include "mgmt/network.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = vireo::mgmt::ParseDomain(text, /*strict=*/false);
  if (parsed) {
    const std::string xml = vireo::mgmt::DomainToXml(parsed->def);
    auto again = vireo::mgmt::ParseDomainXml(xml, /*strict=*/true);
    if (!again) std::abort();  // dumpxml wrote something its own parser refuses
    if (vireo::mgmt::DomainToXml(again->def) != xml) std::abort();
    auto via_json =
        vireo::mgmt::ParseDomainJson(vireo::mgmt::DomainToJson(parsed->def).dump(), true);
    if (!via_json || vireo::mgmt::DomainToXml(via_json->def) != xml) std::abort();
    auto via_toml = vireo::mgmt::ParseDomainToml(vireo::mgmt::DomainToToml(parsed->def), true);
    if (!via_toml || vireo::mgmt::DomainToXml(via_toml->def) != xml) std::abort();
  }
  std::vector<std::string> warnings;
  auto net = vireo::mgmt::ParseNetworkXml(text, &warnings);
  if (net && !vireo::mgmt::ParseNetworkXml(vireo::mgmt::NetworkToXml(*net), nullptr)) std::abort();
  return 0;
}
