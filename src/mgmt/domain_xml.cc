// libvirt domain XML (https://libvirt.org/formatdomain.html), the subset that maps onto
// `vireo run`. Every element outside it becomes a warning naming its path, so a user sees
// exactly what was dropped; DomainToXml writes back what was accepted.
#include <charconv>
#include <sstream>

#include <pugixml.hpp>

#include "mgmt/domain_codec.h"

namespace vireo::mgmt {
namespace {

struct XmlReader {
  std::vector<std::string>& warnings;

  void Unsupported(const pugi::xml_node& node, const std::string& parent) {
    warnings.push_back(fmt::format("unsupported element {}/{}", parent, node.name()));
  }
};

Result<uint64_t> Number(std::string_view what, std::string_view text) {
  // libvirt allows surrounding white space in element text.
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
    text.remove_prefix(1);
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.remove_suffix(1);
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return Fail("{}: '{}' is not a non-negative integer", what, text);
  }
  return value;
}

Result<uint32_t> Number32(std::string_view what, std::string_view text) {
  uint64_t value = VIREO_TRY(Number(what, text));
  if (value > UINT32_MAX) return Fail("{}: {} is out of range", what, value);
  return static_cast<uint32_t>(value);
}

Result<uint64_t> Memory(std::string_view what, const pugi::xml_node& node) {
  uint64_t value = VIREO_TRY(Number(what, node.text().get()));
  auto scaled = ScaleUnit(value, node.attribute("unit").value());
  if (!scaled) return Wrap(what, scaled.error());
  return *scaled;
}

Status ParseOs(const pugi::xml_node& os, DomainDef& d, XmlReader& r) {
  for (pugi::xml_node child : os.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "type") {
      if (std::string_view(child.text().get()) != "hvm") {
        return Fail("os/type '{}': Vireo runs hvm guests", child.text().get());
      }
    } else if (name == "kernel") {
      d.kernel = child.text().get();
    } else if (name == "initrd") {
      d.initrd = child.text().get();
    } else if (name == "cmdline") {
      d.cmdline = child.text().get();
    } else {
      r.Unsupported(child, "/domain/os");
    }
  }
  return {};
}

Status ParseDisk(const pugi::xml_node& node, DomainDef& d, XmlReader& r) {
  std::string_view type = node.attribute("type").value();
  std::string_view device = node.attribute("device").as_string("disk");
  if (type != "file") return Fail("devices/disk type='{}': Vireo supports type='file'", type);
  if (device != "disk")
    return Fail("devices/disk device='{}': Vireo supports device='disk'", device);
  DiskDef disk;
  disk.target = fmt::format("vd{}", static_cast<char>('a' + d.disks.size() % 26));
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "driver") {
      if (auto type_attr = child.attribute("type")) disk.format = type_attr.value();
    } else if (name == "source") {
      disk.path = child.attribute("file").value();
    } else if (name == "target") {
      if (auto dev = child.attribute("dev")) disk.target = dev.value();
      std::string_view bus = child.attribute("bus").as_string("virtio");
      if (bus != "virtio") {
        return Fail("devices/disk target bus='{}': Vireo's disks are virtio", bus);
      }
    } else if (name == "readonly") {
      disk.readonly = true;
    } else {
      r.Unsupported(child, "/domain/devices/disk");
    }
  }
  d.disks.push_back(disk);
  return {};
}

Status ParseInterface(const pugi::xml_node& node, DomainDef& d, XmlReader& r) {
  InterfaceDef net;
  net.type = node.attribute("type").value();
  if (net.type != "ethernet" && net.type != "bridge" && net.type != "network") {
    return Fail("devices/interface type='{}': Vireo supports ethernet, bridge and network",
                net.type);
  }
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "source") {
      net.source = child.attribute(net.type == "network" ? "network" : "bridge").value();
    } else if (name == "target") {
      net.tap = child.attribute("dev").value();
    } else if (name == "mac") {
      net.mac = child.attribute("address").value();
    } else if (name == "model") {
      std::string_view model = child.attribute("type").value();
      if (model != "virtio") {
        return Fail("devices/interface model type='{}': Vireo's NIC is virtio", model);
      }
    } else {
      r.Unsupported(child, "/domain/devices/interface");
    }
  }
  d.interfaces.push_back(net);
  return {};
}

Status ParseDevices(const pugi::xml_node& devices, DomainDef& d, XmlReader& r) {
  d.serial = false;
  for (pugi::xml_node child : devices.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "disk") {
      VIREO_TRY_STATUS(ParseDisk(child, d, r));
    } else if (name == "interface") {
      VIREO_TRY_STATUS(ParseInterface(child, d, r));
    } else if (name == "serial") {
      d.serial = true;
    } else if (name == "console") {
      std::string_view target = child.child("target").attribute("type").as_string("serial");
      if (target == "virtio") {
        d.virtio_console = true;
      } else {
        d.serial = true;
      }
    } else if (name == "rng") {
      if (std::string_view(child.attribute("model").value()) != "virtio") {
        return Fail("devices/rng model='{}': Vireo's RNG is virtio",
                    child.attribute("model").value());
      }
      d.rng = true;
    } else if (name == "memballoon") {
      std::string_view model = child.attribute("model").value();
      if (model == "virtio") {
        d.balloon = true;
      } else if (model != "none") {
        return Fail("devices/memballoon model='{}': expected virtio or none", model);
      }
    } else if (name == "vsock") {
      pugi::xml_node cid = child.child("cid");
      if (!cid || !cid.attribute("address")) {
        return Fail("devices/vsock: needs <cid address='N'/> (auto CIDs are not supported)");
      }
      d.vsock_cid =
          VIREO_TRY(Number32("devices/vsock/cid address", cid.attribute("address").value()));
    } else {
      r.Unsupported(child, "/domain/devices");
    }
  }
  return {};
}

Status ParseCputune(const pugi::xml_node& node, DomainDef& d, XmlReader& r) {
  for (pugi::xml_node child : node.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "vcpupin") {
      auto vcpu = VIREO_TRY(Number32("cputune/vcpupin vcpu", child.attribute("vcpu").value()));
      d.vcpupin[vcpu] = child.attribute("cpuset").value();
    } else if (name == "period") {
      d.cpu_period_us = VIREO_TRY(Number("cputune/period", child.text().get()));
    } else if (name == "quota") {
      d.cpu_quota_us = VIREO_TRY(Number("cputune/quota", child.text().get()));
    } else {
      r.Unsupported(child, "/domain/cputune");
    }
  }
  return {};
}

Status ParseDomainNode(const pugi::xml_node& domain, DomainDef& d, XmlReader& r) {
  d.serial = false;
  bool memory_seen = false;
  for (pugi::xml_node child : domain.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "name") {
      d.name = child.text().get();
    } else if (name == "uuid") {
      d.uuid = VIREO_TRY(CanonicalUuid(child.text().get()));
    } else if (name == "memory") {
      d.memory_bytes = VIREO_TRY(Memory("memory", child));
      memory_seen = true;
    } else if (name == "currentMemory") {
      d.current_memory_bytes = VIREO_TRY(Memory("currentMemory", child));
    } else if (name == "vcpu") {
      d.vcpus = VIREO_TRY(Number32("vcpu", child.text().get()));
    } else if (name == "cputune") {
      VIREO_TRY_STATUS(ParseCputune(child, d, r));
    } else if (name == "memtune") {
      for (pugi::xml_node limit : child.children()) {
        if (limit.type() != pugi::node_element) continue;
        if (std::string_view(limit.name()) == "hard_limit") {
          d.memory_hard_limit_bytes = VIREO_TRY(Memory("memtune/hard_limit", limit));
        } else {
          r.Unsupported(limit, "/domain/memtune");
        }
      }
    } else if (name == "cpu") {
      d.cpu_mode = child.attribute("mode").value();
      for (pugi::xml_node c : child.children()) {
        if (c.type() != pugi::node_element) continue;
        if (std::string_view(c.name()) == "topology") {
          d.sockets = VIREO_TRY(Number32("cpu/topology sockets", c.attribute("sockets").value()));
          d.cores = VIREO_TRY(Number32("cpu/topology cores", c.attribute("cores").value()));
          d.threads = VIREO_TRY(Number32("cpu/topology threads", c.attribute("threads").value()));
        } else {
          r.Unsupported(c, "/domain/cpu");
        }
      }
    } else if (name == "os") {
      VIREO_TRY_STATUS(ParseOs(child, d, r));
    } else if (name == "features") {
      d.acpi = false;
      for (pugi::xml_node f : child.children()) {
        if (f.type() != pugi::node_element) continue;
        std::string_view feature = f.name();
        if (feature == "acpi") {
          d.acpi = true;
        } else if (feature != "apic") {  // Vireo always has an APIC
          r.Unsupported(f, "/domain/features");
        }
      }
    } else if (name == "memoryBacking") {
      for (pugi::xml_node m : child.children()) {
        if (m.type() != pugi::node_element) continue;
        std::string_view what = m.name();
        if (what == "hugepages") {
          d.hugepages = true;
        } else if (what == "locked") {
          d.locked = true;
        } else {
          r.Unsupported(m, "/domain/memoryBacking");
        }
      }
    } else if (name == "devices") {
      VIREO_TRY_STATUS(ParseDevices(child, d, r));
    } else {
      r.Unsupported(child, "/domain");
    }
  }
  if (!memory_seen) return Fail("memory: the domain has no <memory> element");
  // currentMemory equal to memory is libvirt's way of saying "no balloon target".
  if (d.current_memory_bytes == d.memory_bytes) d.current_memory_bytes = 0;
  return {};
}

void AddMemory(pugi::xml_node parent, const char* name, uint64_t bytes) {
  pugi::xml_node node = parent.append_child(name);
  // KiB is what libvirt writes back; sizes below 1 KiB granularity are kept in bytes.
  if (bytes % 1024 == 0) {
    node.append_attribute("unit") = "KiB";
    node.text() = std::to_string(bytes / 1024).c_str();
  } else {
    node.append_attribute("unit") = "b";
    node.text() = std::to_string(bytes).c_str();
  }
}

}  // namespace

Result<ParsedDomain> ParseDomainXml(std::string_view text, bool strict) {
  pugi::xml_document doc;
  pugi::xml_parse_result parsed = doc.load_buffer(text.data(), text.size());
  if (!parsed) {
    return Fail("malformed XML at offset {}: {}", parsed.offset, parsed.description());
  }
  pugi::xml_node domain = doc.document_element();
  if (std::string_view(domain.name()) != "domain") {
    return Fail("XML: the root element is <{}>, expected <domain>", domain.name());
  }
  ParsedDomain out;
  XmlReader reader{out.warnings};
  std::string_view type = domain.attribute("type").as_string("kvm");
  if (type != "kvm") out.warnings.push_back(fmt::format("domain type '{}' is run as kvm", type));
  VIREO_TRY_STATUS(ParseDomainNode(domain, out.def, reader));
  if (strict && !out.warnings.empty()) {
    return Fail("{} (refused with --strict)", out.warnings.front());
  }
  if (out.def.uuid.empty()) out.def.uuid = NewUuid();
  VIREO_TRY_STATUS(Validate(out.def, /*check_files=*/false));
  return out;
}

std::string DomainToXml(const DomainDef& d) {
  pugi::xml_document doc;
  pugi::xml_node domain = doc.append_child("domain");
  domain.append_attribute("type") = "kvm";
  domain.append_child("name").text() = d.name.c_str();
  domain.append_child("uuid").text() = d.uuid.c_str();
  AddMemory(domain, "memory", d.memory_bytes);
  AddMemory(domain, "currentMemory", d.EffectiveCurrentMemory());
  if (d.hugepages || d.locked) {
    pugi::xml_node backing = domain.append_child("memoryBacking");
    if (d.hugepages) backing.append_child("hugepages");
    if (d.locked) backing.append_child("locked");
  }
  pugi::xml_node vcpu = domain.append_child("vcpu");
  vcpu.append_attribute("placement") = "static";
  vcpu.text() = d.vcpus;
  if (!d.vcpupin.empty() || d.cpu_period_us || d.cpu_quota_us) {
    pugi::xml_node tune = domain.append_child("cputune");
    for (const auto& [cpu, cpuset] : d.vcpupin) {
      pugi::xml_node pin = tune.append_child("vcpupin");
      pin.append_attribute("vcpu") = cpu;
      pin.append_attribute("cpuset") = cpuset.c_str();
    }
    if (d.cpu_period_us)
      tune.append_child("period").text() = std::to_string(d.cpu_period_us).c_str();
    if (d.cpu_quota_us) tune.append_child("quota").text() = std::to_string(d.cpu_quota_us).c_str();
  }
  if (d.memory_hard_limit_bytes) {
    AddMemory(domain.append_child("memtune"), "hard_limit", d.memory_hard_limit_bytes);
  }
  pugi::xml_node os = domain.append_child("os");
  pugi::xml_node type = os.append_child("type");
  type.append_attribute("arch") = "x86_64";
  type.text() = "hvm";
  os.append_child("kernel").text() = d.kernel.c_str();
  if (!d.initrd.empty()) os.append_child("initrd").text() = d.initrd.c_str();
  if (!d.cmdline.empty()) os.append_child("cmdline").text() = d.cmdline.c_str();
  if (d.acpi) domain.append_child("features").append_child("acpi");
  if (!d.cpu_mode.empty() || d.sockets) {
    pugi::xml_node cpu = domain.append_child("cpu");
    if (!d.cpu_mode.empty()) cpu.append_attribute("mode") = d.cpu_mode.c_str();
    if (d.sockets) {
      pugi::xml_node topology = cpu.append_child("topology");
      topology.append_attribute("sockets") = d.sockets;
      topology.append_attribute("cores") = d.cores;
      topology.append_attribute("threads") = d.threads;
    }
  }
  pugi::xml_node devices = domain.append_child("devices");
  for (const DiskDef& disk : d.disks) {
    pugi::xml_node node = devices.append_child("disk");
    node.append_attribute("type") = "file";
    node.append_attribute("device") = "disk";
    pugi::xml_node driver = node.append_child("driver");
    driver.append_attribute("name") = "vireo";
    driver.append_attribute("type") = disk.format.c_str();
    node.append_child("source").append_attribute("file") = disk.path.c_str();
    pugi::xml_node target = node.append_child("target");
    target.append_attribute("dev") = disk.target.c_str();
    target.append_attribute("bus") = "virtio";
    if (disk.readonly) node.append_child("readonly");
  }
  for (const InterfaceDef& net : d.interfaces) {
    pugi::xml_node node = devices.append_child("interface");
    node.append_attribute("type") = net.type.c_str();
    if (!net.mac.empty()) node.append_child("mac").append_attribute("address") = net.mac.c_str();
    if (!net.source.empty()) {
      node.append_child("source").append_attribute(net.type == "network" ? "network" : "bridge") =
          net.source.c_str();
    }
    if (!net.tap.empty()) node.append_child("target").append_attribute("dev") = net.tap.c_str();
    node.append_child("model").append_attribute("type") = "virtio";
  }
  if (d.serial) {
    pugi::xml_node serial = devices.append_child("serial");
    serial.append_attribute("type") = "pty";
    serial.append_child("target").append_attribute("port") = 0;
  }
  if (d.virtio_console) {
    pugi::xml_node console = devices.append_child("console");
    console.append_attribute("type") = "pty";
    console.append_child("target").append_attribute("type") = "virtio";
  }
  if (d.rng) {
    pugi::xml_node rng = devices.append_child("rng");
    rng.append_attribute("model") = "virtio";
    pugi::xml_node backend = rng.append_child("backend");
    backend.append_attribute("model") = "random";
    backend.text() = "/dev/urandom";
  }
  if (d.vsock_cid) {
    pugi::xml_node vsock = devices.append_child("vsock");
    vsock.append_attribute("model") = "virtio";
    pugi::xml_node cid = vsock.append_child("cid");
    cid.append_attribute("auto") = "no";
    cid.append_attribute("address") = *d.vsock_cid;
  }
  devices.append_child("memballoon").append_attribute("model") = d.balloon ? "virtio" : "none";
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_default | pugi::format_no_declaration);
  return out.str();
}

}  // namespace vireo::mgmt
