#include "mgmt/network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include <pugixml.hpp>

#include "base/unique_fd.h"
#include "mgmt/domain.h"

extern char** environ;

namespace vireo::mgmt {
namespace {

Result<uint32_t> ParseIpv4(std::string_view what, const std::string& text) {
  in_addr addr{};
  if (::inet_pton(AF_INET, text.c_str(), &addr) != 1) {
    return Fail("{} '{}': not an IPv4 address", what, text);
  }
  return ntohl(addr.s_addr);
}

std::string FormatIpv4(uint32_t value) {
  return fmt::format("{}.{}.{}.{}", value >> 24, (value >> 16) & 255, (value >> 8) & 255,
                     value & 255);
}

std::string Subnet(const NetworkDef& def) {
  uint32_t addr = *ParseIpv4("ip address", def.address);
  uint32_t mask = def.prefix == 0 ? 0 : ~uint32_t{0} << (32 - def.prefix);
  return fmt::format("{}/{}", FormatIpv4(addr & mask), def.prefix);
}

Status ValidateNetwork(const NetworkDef& def) {
  // The name becomes file names and the nftables table's name.
  if (auto s = ValidateName(def.name); !s) return Fail("network {}", s.error().message);
  if (def.bridge.empty()) return Fail("network '{}': needs <bridge name='...'/>", def.name);
  if (def.bridge.size() >= IFNAMSIZ) {
    return Fail("bridge name '{}': longer than {} characters", def.bridge, IFNAMSIZ - 1);
  }
  for (char c : def.bridge) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') {
      return Fail("bridge name '{}': only letters, digits and _ - . are allowed", def.bridge);
    }
  }
  if (!def.uuid.empty()) VIREO_TRY_STATUS(CanonicalUuid(def.uuid));
  if (def.forward != "nat" && def.forward != "bridge" && def.forward != "none") {
    return Fail("forward mode '{}': Vireo supports nat, bridge and none (no <forward>)",
                def.forward);
  }
  if (def.forward == "bridge") return {};
  if (def.address.empty())
    return Fail("network '{}': needs <ip address=... prefix|netmask=...>", def.name);
  uint32_t addr = VIREO_TRY(ParseIpv4("ip address", def.address));
  if (def.prefix < 8 || def.prefix > 30) return Fail("ip prefix {}: expected 8-30", def.prefix);
  uint32_t mask = ~uint32_t{0} << (32 - def.prefix);
  if (!def.dhcp_start.empty() || !def.dhcp_end.empty()) {
    uint32_t start = VIREO_TRY(ParseIpv4("dhcp/range start", def.dhcp_start));
    uint32_t end = VIREO_TRY(ParseIpv4("dhcp/range end", def.dhcp_end));
    if ((start & mask) != (addr & mask) || (end & mask) != (addr & mask) || start > end) {
      return Fail("dhcp/range {}-{}: must lie in {} and start <= end", def.dhcp_start, def.dhcp_end,
                  Subnet(def));
    }
  }
  return {};
}

}  // namespace

Result<NetworkDef> ParseNetworkXml(std::string_view text, std::vector<std::string>* warnings) {
  pugi::xml_document doc;
  pugi::xml_parse_result parsed = doc.load_buffer(text.data(), text.size());
  if (!parsed) return Fail("malformed XML at offset {}: {}", parsed.offset, parsed.description());
  pugi::xml_node net = doc.document_element();
  if (std::string_view(net.name()) != "network") {
    return Fail("XML: the root element is <{}>, expected <network>", net.name());
  }
  NetworkDef def;
  def.forward = "none";
  for (pugi::xml_node child : net.children()) {
    if (child.type() != pugi::node_element) continue;
    std::string_view name = child.name();
    if (name == "name") {
      def.name = child.text().get();
    } else if (name == "uuid") {
      def.uuid = child.text().get();
    } else if (name == "forward") {
      def.forward = child.attribute("mode").as_string("nat");
    } else if (name == "bridge") {
      def.bridge = child.attribute("name").value();
    } else if (name == "ip") {
      def.address = child.attribute("address").value();
      if (auto prefix = child.attribute("prefix")) {
        def.prefix = prefix.as_int(-1);
      } else if (auto netmask = child.attribute("netmask")) {
        uint32_t mask = VIREO_TRY(ParseIpv4("ip netmask", netmask.value()));
        def.prefix = __builtin_popcount(mask);
        if (mask != (def.prefix ? ~uint32_t{0} << (32 - def.prefix) : 0)) {
          return Fail("ip netmask '{}': not a contiguous mask", netmask.value());
        }
      }
      pugi::xml_node range = child.child("dhcp").child("range");
      if (range) {
        def.dhcp_start = range.attribute("start").value();
        def.dhcp_end = range.attribute("end").value();
      }
    } else if (warnings) {
      warnings->push_back(fmt::format("unsupported element /network/{}", name));
    }
  }
  VIREO_TRY_STATUS(ValidateNetwork(def));
  return def;
}

std::string NetworkToXml(const NetworkDef& def) {
  pugi::xml_document doc;
  pugi::xml_node net = doc.append_child("network");
  net.append_child("name").text() = def.name.c_str();
  if (!def.uuid.empty()) net.append_child("uuid").text() = def.uuid.c_str();
  if (def.forward != "none")
    net.append_child("forward").append_attribute("mode") = def.forward.c_str();
  net.append_child("bridge").append_attribute("name") = def.bridge.c_str();
  if (!def.address.empty()) {
    pugi::xml_node ip = net.append_child("ip");
    ip.append_attribute("address") = def.address.c_str();
    ip.append_attribute("prefix") = def.prefix;
    if (!def.dhcp_start.empty()) {
      pugi::xml_node range = ip.append_child("dhcp").append_child("range");
      range.append_attribute("start") = def.dhcp_start.c_str();
      range.append_attribute("end") = def.dhcp_end.c_str();
    }
  }
  std::ostringstream out;
  doc.save(out, "  ", pugi::format_default | pugi::format_no_declaration);
  return out.str();
}

Status RunTool(const std::vector<std::string>& argv) {
  int err_pipe[2];
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return Fail("pipe: {}", std::strerror(errno));
  UniqueFd read_end(err_pipe[0]), write_end(err_pipe[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, write_end.get(), STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<std::string> args = argv;
  std::vector<char*> cargs;
  for (std::string& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  // The daemon's threads block SIGTERM and SIGINT (taken by sigwait); a tool, dnsmasq above
  // all, must not inherit that, or it could never be stopped.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  for (int sig : {SIGINT, SIGTERM, SIGPIPE, SIGHUP}) sigaddset(&defaults, sig);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, cargs[0], &actions, &attr, cargs.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  write_end.reset();
  if (rc != 0) return Fail("{}: cannot run it: {} (is it installed?)", argv[0], std::strerror(rc));
  std::string err;
  char buffer[512];
  ssize_t n;
  while ((n = ::read(read_end.get(), buffer, sizeof(buffer))) > 0)
    err.append(buffer, static_cast<size_t>(n));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  while (!err.empty() && (err.back() == '\n' || err.back() == ' ')) err.pop_back();
  std::string command;
  for (const std::string& a : argv) command += (command.empty() ? "" : " ") + a;
  return Fail("'{}' failed: {}", command,
              err.empty() ? "exit status " + std::to_string(WEXITSTATUS(status)) : err);
}

bool NetworkHost::LinkExists(const std::string& name) {
  return ::if_nametoindex(name.c_str()) != 0;
}

int NetworkHost::DnsmasqPid(const NetworkDef& def) const {
  std::ifstream in(fmt::format("{}/net-{}.pid", run_dir_, def.name));
  int pid = 0;
  if (!(in >> pid) || pid <= 0) return 0;
  std::ifstream comm(fmt::format("/proc/{}/comm", pid));
  std::string name;
  comm >> name;
  return name == "dnsmasq" ? pid : 0;
}

bool NetworkHost::IsActive(const NetworkDef& def) const {
  if (!LinkExists(def.bridge)) return false;
  if (def.forward == "bridge") return true;
  return def.dhcp_start.empty() || DnsmasqPid(def) != 0;
}

Status NetworkHost::Start(const NetworkDef& def) const {
  if (def.forward == "bridge") {
    if (!LinkExists(def.bridge)) {
      return Fail("network '{}': host bridge '{}' does not exist; create it first", def.name,
                  def.bridge);
    }
    return {};
  }
  if (LinkExists(def.bridge)) {
    return Fail("network '{}': device '{}' already exists; pick another bridge name", def.name,
                def.bridge);
  }
  auto undo = [&](Error e) {
    (void)Stop(def);
    return tl::unexpected(e);
  };
  if (auto s = RunTool({"ip", "link", "add", def.bridge, "type", "bridge"}); !s) return s;
  if (auto s = RunTool(
          {"ip", "addr", "add", fmt::format("{}/{}", def.address, def.prefix), "dev", def.bridge});
      !s) {
    return undo(s.error());
  }
  if (auto s = RunTool({"ip", "link", "set", def.bridge, "up"}); !s) return undo(s.error());
  if (def.forward == "nat") {
    const std::string subnet = Subnet(def);
    const std::string script = fmt::format(
        "table ip vireo-{0} {{\n"
        "  chain postrouting {{\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        "    ip saddr {1} ip daddr != {1} masquerade\n"
        "  }}\n"
        "  chain forward {{\n"
        "    type filter hook forward priority filter; policy accept;\n"
        "    iifname \"{2}\" ip saddr {1} accept\n"
        "    oifname \"{2}\" ip daddr {1} ct state established,related accept\n"
        "  }}\n"
        "}}\n",
        def.name, subnet, def.bridge);
    const std::string path = fmt::format("{}/net-{}.nft", run_dir_, def.name);
    {
      std::ofstream out(path);
      out << script;
    }
    if (auto s = RunTool({"nft", "-f", path}); !s) return undo(s.error());
    std::ofstream forward("/proc/sys/net/ipv4/ip_forward");
    forward << "1\n";
  }
  if (!def.dhcp_start.empty()) {
    // Only on this bridge, with no configuration from /etc; it daemonises and writes its pid.
    if (auto s =
            RunTool({"dnsmasq", "--conf-file=/dev/null", "--strict-order", "--bind-interfaces",
                     "--except-interface=lo", "--interface=" + def.bridge,
                     "--listen-address=" + def.address,
                     fmt::format("--dhcp-range={},{}", def.dhcp_start, def.dhcp_end),
                     "--dhcp-no-override", "--dhcp-authoritative",
                     fmt::format("--dhcp-leasefile={}/net-{}.leases", run_dir_, def.name),
                     fmt::format("--pid-file={}/net-{}.pid", run_dir_, def.name), "--user=root"});
        !s) {
      return undo(s.error());
    }
  }
  return {};
}

Status NetworkHost::Stop(const NetworkDef& def) const {
  if (def.forward == "bridge") return {};  // the host's bridge is not ours to remove
  Status first;
  if (int pid = DnsmasqPid(def)) ::kill(pid, SIGTERM);
  ::unlink(fmt::format("{}/net-{}.pid", run_dir_, def.name).c_str());
  if (def.forward == "nat") {
    auto s = RunTool({"nft", "delete", "table", "ip", "vireo-" + def.name});
    if (!s && first) first = s;
  }
  if (LinkExists(def.bridge)) {
    auto s = RunTool({"ip", "link", "del", def.bridge});
    if (!s && first) first = s;
  }
  return first;
}

Status NetworkHost::CreateTap(const std::string& tap, const std::string& bridge,
                              const std::string& mac) {
  (void)mac;  // the guest's MAC is virtio-net's; the tap keeps its own
  if (!LinkExists(bridge)) return Fail("bridge '{}' does not exist", bridge);
  VIREO_TRY_STATUS(RunTool({"ip", "tuntap", "add", "dev", tap, "mode", "tap", "vnet_hdr"}));
  if (auto s = RunTool({"ip", "link", "set", tap, "master", bridge}); !s) {
    DeleteTap(tap);
    return s;
  }
  if (auto s = RunTool({"ip", "link", "set", tap, "up"}); !s) {
    DeleteTap(tap);
    return s;
  }
  return {};
}

void NetworkHost::DeleteTap(const std::string& tap) {
  if (LinkExists(tap)) (void)RunTool({"ip", "link", "del", tap});
}

}  // namespace vireo::mgmt
