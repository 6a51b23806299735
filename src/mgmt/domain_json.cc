// Vireo's JSON definition format. Sizes are "256M"-style strings or byte counts.
#include <charconv>
#include <set>

#include "base/size_parse.h"
#include "mgmt/domain_codec.h"
#include "mgmt/domain_toml.h"

namespace vireo::mgmt {
namespace {

using nlohmann::json;

// Reads typed members of one JSON object, noting keys it was never asked about.
class ObjectReader {
 public:
  ObjectReader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  bool Has(const std::string& key) {
    seen_.insert(key);
    return object_.contains(key) && !object_[key].is_null();
  }
  Result<std::string> String(const std::string& key) {
    if (!Has(key)) return std::string();
    if (!object_[key].is_string()) return Fail("{}{}: expected a string", where_, key);
    return object_[key].get<std::string>();
  }
  Result<bool> Bool(const std::string& key, bool fallback) {
    if (!Has(key)) return fallback;
    if (!object_[key].is_boolean()) return Fail("{}{}: expected true or false", where_, key);
    return object_[key].get<bool>();
  }
  Result<uint64_t> Unsigned(const std::string& key, uint64_t fallback) {
    if (!Has(key)) return fallback;
    if (!object_[key].is_number_unsigned()) {
      return Fail("{}{}: expected a non-negative integer", where_, key);
    }
    return object_[key].get<uint64_t>();
  }
  Result<uint32_t> U32(const std::string& key, uint32_t fallback) {
    uint64_t value = VIREO_TRY(Unsigned(key, fallback));
    if (value > UINT32_MAX) return Fail("{}{}: {} is out of range", where_, key, value);
    return static_cast<uint32_t>(value);
  }
  Result<uint64_t> Size(const std::string& key, uint64_t fallback) {
    if (!Has(key)) return fallback;
    const json& v = object_[key];
    if (v.is_number_unsigned()) return v.get<uint64_t>();
    if (!v.is_string()) return Fail("{}{}: expected a size such as \"256M\" or bytes", where_, key);
    auto size = ParseSize(v.get<std::string>(), /*default_unit_mib=*/false);
    if (!size) return Wrap(where_ + key, size.error());
    return *size;
  }
  // Keys present but never read: unsupported.
  void Unknown(std::vector<std::string>& warnings) const {
    for (const auto& [key, value] : object_.items()) {
      if (!seen_.count(key)) warnings.push_back(fmt::format("unsupported key {}{}", where_, key));
    }
  }

 private:
  const json& object_;
  std::string where_;
  std::set<std::string> seen_;
};

Result<void> ParseInto(const json& doc, ParsedDomain& out) {
  if (!doc.is_object()) return Fail("definition: expected a JSON object");
  DomainDef& d = out.def;
  ObjectReader r(doc, "");
  d.name = VIREO_TRY(r.String("name"));
  d.uuid = VIREO_TRY(r.String("uuid"));
  d.memory_bytes = VIREO_TRY(r.Size("memory", d.memory_bytes));
  d.current_memory_bytes = VIREO_TRY(r.Size("current_memory", 0));
  d.vcpus = VIREO_TRY(r.U32("vcpus", 1));
  if (r.Has("vcpupin")) {
    if (!doc["vcpupin"].is_object()) return Fail("vcpupin: expected {{\"VCPU\": \"HOSTCPU\"}}");
    for (const auto& [key, value] : doc["vcpupin"].items()) {
      uint32_t vcpu = 0;
      auto [end, ec] = std::from_chars(key.data(), key.data() + key.size(), vcpu);
      if (key.empty() || ec != std::errc() || end != key.data() + key.size()) {
        return Fail("vcpupin: key '{}' is not a vCPU number", key);
      }
      d.vcpupin[vcpu] = value.is_string() ? value.get<std::string>() : value.dump();
    }
  }
  if (r.Has("cpu")) {
    ObjectReader cpu(doc["cpu"], "cpu.");
    d.cpu_mode = VIREO_TRY(cpu.String("mode"));
    d.sockets = VIREO_TRY(cpu.U32("sockets", 0));
    d.cores = VIREO_TRY(cpu.U32("cores", 0));
    d.threads = VIREO_TRY(cpu.U32("threads", 0));
    cpu.Unknown(out.warnings);
  }
  d.kernel = VIREO_TRY(r.String("kernel"));
  d.initrd = VIREO_TRY(r.String("initrd"));
  d.cmdline = VIREO_TRY(r.String("cmdline"));
  d.acpi = VIREO_TRY(r.Bool("acpi", true));
  d.hugepages = VIREO_TRY(r.Bool("hugepages", false));
  d.locked = VIREO_TRY(r.Bool("locked", false));
  if (r.Has("disks")) {
    if (!doc["disks"].is_array()) return Fail("disks: expected an array");
    size_t i = 0;
    for (const json& item : doc["disks"]) {
      ObjectReader disk(item, fmt::format("disks[{}].", i));
      if (!item.is_object()) return Fail("disks[{}]: expected an object", i);
      DiskDef def;
      def.path = VIREO_TRY(disk.String("path"));
      if (disk.Has("format")) def.format = VIREO_TRY(disk.String("format"));
      def.target = disk.Has("target") ? VIREO_TRY(disk.String("target"))
                                      : fmt::format("vd{}", static_cast<char>('a' + i % 26));
      def.readonly = VIREO_TRY(disk.Bool("readonly", false));
      disk.Unknown(out.warnings);
      d.disks.push_back(def);
      ++i;
    }
  }
  if (r.Has("interfaces")) {
    if (!doc["interfaces"].is_array()) return Fail("interfaces: expected an array");
    size_t i = 0;
    for (const json& item : doc["interfaces"]) {
      if (!item.is_object()) return Fail("interfaces[{}]: expected an object", i);
      ObjectReader net(item, fmt::format("interfaces[{}].", i));
      InterfaceDef def;
      if (net.Has("type")) def.type = VIREO_TRY(net.String("type"));
      def.source = VIREO_TRY(net.String("source"));
      def.tap = VIREO_TRY(net.String("tap"));
      def.mac = VIREO_TRY(net.String("mac"));
      net.Unknown(out.warnings);
      d.interfaces.push_back(def);
      ++i;
    }
  }
  d.serial = VIREO_TRY(r.Bool("serial", true));
  d.virtio_console = VIREO_TRY(r.Bool("virtio_console", false));
  d.rng = VIREO_TRY(r.Bool("rng", false));
  d.balloon = VIREO_TRY(r.Bool("balloon", false));
  if (r.Has("vsock_cid")) d.vsock_cid = VIREO_TRY(r.U32("vsock_cid", 0));
  if (r.Has("limits")) {
    ObjectReader limits(doc["limits"], "limits.");
    d.cpu_quota_us = VIREO_TRY(limits.Unsigned("cpu_quota_us", 0));
    d.cpu_period_us = VIREO_TRY(limits.Unsigned("cpu_period_us", 0));
    d.memory_hard_limit_bytes = VIREO_TRY(limits.Size("memory_hard_limit", 0));
    limits.Unknown(out.warnings);
  }
  r.Unknown(out.warnings);
  return {};
}

}  // namespace

Result<ParsedDomain> ParseDomainJson(std::string_view text, bool strict) {
  json doc = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Fail("definition: malformed JSON");
  return ParseDomainJsonValue(doc, strict);
}

Result<ParsedDomain> ParseDomainJsonValue(const json& doc, bool strict) {
  ParsedDomain out;
  VIREO_TRY_STATUS(ParseInto(doc, out));
  if (strict && !out.warnings.empty()) {
    return Fail("{} (refused with --strict)", out.warnings.front());
  }
  if (out.def.uuid.empty()) {
    out.def.uuid = NewUuid();
  } else {
    out.def.uuid = VIREO_TRY(CanonicalUuid(out.def.uuid));
  }
  VIREO_TRY_STATUS(Validate(out.def, /*check_files=*/false));
  return out;
}

nlohmann::json DomainToJson(const DomainDef& d) {
  json j = {{"name", d.name},     {"uuid", d.uuid}, {"memory", d.memory_bytes}, {"vcpus", d.vcpus},
            {"kernel", d.kernel}, {"acpi", d.acpi}, {"serial", d.serial}};
  if (d.current_memory_bytes) j["current_memory"] = d.current_memory_bytes;
  if (!d.vcpupin.empty()) {
    json pins = json::object();
    for (const auto& [vcpu, cpuset] : d.vcpupin) pins[std::to_string(vcpu)] = cpuset;
    j["vcpupin"] = pins;
  }
  if (!d.cpu_mode.empty() || d.sockets) {
    json cpu = json::object();
    if (!d.cpu_mode.empty()) cpu["mode"] = d.cpu_mode;
    if (d.sockets) cpu.update({{"sockets", d.sockets}, {"cores", d.cores}, {"threads", d.threads}});
    j["cpu"] = cpu;
  }
  if (!d.initrd.empty()) j["initrd"] = d.initrd;
  if (!d.cmdline.empty()) j["cmdline"] = d.cmdline;
  if (d.hugepages) j["hugepages"] = true;
  if (d.locked) j["locked"] = true;
  if (!d.disks.empty()) {
    j["disks"] = json::array();
    for (const DiskDef& disk : d.disks) {
      j["disks"].push_back({{"path", disk.path},
                            {"format", disk.format},
                            {"target", disk.target},
                            {"readonly", disk.readonly}});
    }
  }
  if (!d.interfaces.empty()) {
    j["interfaces"] = json::array();
    for (const InterfaceDef& net : d.interfaces) {
      json n = {{"type", net.type}};
      if (!net.source.empty()) n["source"] = net.source;
      if (!net.tap.empty()) n["tap"] = net.tap;
      if (!net.mac.empty()) n["mac"] = net.mac;
      j["interfaces"].push_back(n);
    }
  }
  if (d.virtio_console) j["virtio_console"] = true;
  if (d.rng) j["rng"] = true;
  if (d.balloon) j["balloon"] = true;
  if (d.vsock_cid) j["vsock_cid"] = *d.vsock_cid;
  if (d.cpu_quota_us || d.cpu_period_us || d.memory_hard_limit_bytes) {
    json limits = json::object();
    if (d.cpu_quota_us) limits["cpu_quota_us"] = d.cpu_quota_us;
    if (d.cpu_period_us) limits["cpu_period_us"] = d.cpu_period_us;
    if (d.memory_hard_limit_bytes) limits["memory_hard_limit"] = d.memory_hard_limit_bytes;
    j["limits"] = limits;
  }
  return j;
}

Result<ParsedDomain> ParseDomain(std::string_view text, bool strict) {
  size_t first = text.find_first_not_of(" \t\r\n");
  if (first == std::string_view::npos) return Fail("definition: empty");
  if (text[first] == '<') return ParseDomainXml(text, strict);
  if (text[first] == '{') return ParseDomainJson(text, strict);
  return ParseDomainToml(text, strict);
}

}  // namespace vireo::mgmt
