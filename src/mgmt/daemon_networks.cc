// Daemon: managed networks (network.h does the host side).
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>

#include "base/log.h"
#include "mgmt/daemon.h"
#include "mgmt/daemon_internal.h"
#include "mgmt/domain_codec.h"
#include "mgmt/network.h"

namespace vireo::mgmt {

using nlohmann::json;
namespace fs = std::filesystem;
using namespace daemon_internal;

namespace {

json NetSummary(const NetworkDef& def, bool active) {
  json j = {
      {"name", def.name}, {"forward", def.forward}, {"bridge", def.bridge}, {"active", active}};
  if (!def.address.empty()) j.update({{"address", def.address}, {"prefix", def.prefix}});
  if (!def.dhcp_start.empty()) j["dhcp_range"] = {def.dhcp_start, def.dhcp_end};
  return j;
}

HttpResponse NoNetwork(const std::string& name) {
  return api::ErrorResponse(
      404, fmt::format("Network not found: no network with matching name '{}'", name));
}

}  // namespace

HttpResponse Daemon::NetList() {
  std::lock_guard lock(mutex_);
  json list = json::array();
  for (const auto& [name, def] : networks_)
    list.push_back(NetSummary(def, net_host_.IsActive(def)));
  return Ok({{"networks", list}});
}

HttpResponse Daemon::NetDefine(const std::string& xml) {
  std::vector<std::string> warnings;
  auto def = ParseNetworkXml(xml, &warnings);
  if (!def) return api::ErrorResponse(400, def.error().message);
  std::lock_guard lock(mutex_);
  auto it = networks_.find(def->name);
  if (it != networks_.end() && net_host_.IsActive(it->second)) {
    return api::ErrorResponse(
        409, fmt::format("{}: network '{}' is active; destroy it first", kNotValid, def->name));
  }
  for (const auto& [name, other] : networks_) {
    if (name != def->name && other.bridge == def->bridge) {
      return api::ErrorResponse(
          409, fmt::format("bridge '{}' is already used by network '{}'", def->bridge, name));
    }
  }
  if (auto s = WriteFileAtomic(Path("networks", def->name, ".xml"), NetworkToXml(*def)); !s) {
    return api::ErrorResponse(500, s.error().message);
  }
  const bool created = it == networks_.end();
  networks_[def->name] = *def;
  HttpResponse r = Ok({{"name", def->name}, {"warnings", warnings}});
  r.status = created ? 201 : 200;
  return r;
}

HttpResponse Daemon::NetInfo(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = networks_.find(name);
  if (it == networks_.end()) return NoNetwork(name);
  json info = NetSummary(it->second, net_host_.IsActive(it->second));
  info["xml"] = NetworkToXml(it->second);
  if (int pid = net_host_.DnsmasqPid(it->second)) info["dnsmasq_pid"] = pid;
  return Ok(info);
}

HttpResponse Daemon::NetStart(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = networks_.find(name);
  if (it == networks_.end()) return NoNetwork(name);
  if (net_host_.IsActive(it->second)) {
    return api::ErrorResponse(409, fmt::format("{}: network is already active", kNotValid));
  }
  if (auto s = net_host_.Start(it->second); !s) {
    return api::ErrorResponse(
        500, fmt::format("Failed to start network '{}': {}", name, s.error().message));
  }
  return Ok(NetSummary(it->second, true));
}

HttpResponse Daemon::NetDestroy(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = networks_.find(name);
  if (it == networks_.end()) return NoNetwork(name);
  if (!net_host_.IsActive(it->second)) {
    return api::ErrorResponse(409, fmt::format("{}: network is not active", kNotValid));
  }
  if (auto s = net_host_.Stop(it->second); !s) return api::ErrorResponse(500, s.error().message);
  return Ok(NetSummary(it->second, false));
}

HttpResponse Daemon::NetUndefine(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = networks_.find(name);
  if (it == networks_.end()) return NoNetwork(name);
  if (net_host_.IsActive(it->second) && it->second.forward != "bridge") {
    return api::ErrorResponse(
        409, fmt::format("{}: network '{}' is active; destroy it first", kNotValid, name));
  }
  ::unlink(Path("networks", name, ".xml").c_str());
  ::unlink(Path("networks", name, ".autostart").c_str());
  networks_.erase(it);
  return Ok({{"name", name}});
}

HttpResponse Daemon::NetAutostart(const std::string& name, bool enable) {
  std::lock_guard lock(mutex_);
  auto it = networks_.find(name);
  if (it == networks_.end()) return NoNetwork(name);
  const std::string marker = Path("networks", name, ".autostart");
  if (enable) {
    if (auto s = WriteFileAtomic(marker, "1\n"); !s)
      return api::ErrorResponse(500, s.error().message);
  } else {
    ::unlink(marker.c_str());
  }
  json summary = NetSummary(it->second, net_host_.IsActive(it->second));
  summary["autostart"] = enable;
  return Ok(summary);
}

}  // namespace vireo::mgmt
