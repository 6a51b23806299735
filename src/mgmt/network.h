// Managed networks, as libvirt's: a NAT network is a bridge the daemon creates with the
// host's address on it, nftables masquerading for its subnet, and dnsmasq serving DHCP and
// DNS on it; a bridged network names an existing host bridge. A VM's interface of type
// 'network' or 'bridge' gets a tap the daemon creates and joins to the bridge.
// The host side runs `ip`, `nft` and `dnsmasq` (Debian's iproute2, nftables, dnsmasq-base).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vireo::mgmt {

struct NetworkDef {
  std::string name;
  std::string uuid;
  std::string forward = "nat";  // nat | bridge (an existing host bridge) | none (isolated)
  std::string bridge;           // the bridge device
  std::string address;          // the host's IPv4 address on the bridge (nat, none)
  int prefix = 24;
  std::string dhcp_start, dhcp_end;  // empty: no DHCP
};

// libvirt network XML (https://libvirt.org/formatnetwork.html): name, uuid, forward mode,
// bridge name, ip address + netmask|prefix, dhcp/range. Other elements are warnings.
Result<NetworkDef> ParseNetworkXml(std::string_view text, std::vector<std::string>* warnings);
std::string NetworkToXml(const NetworkDef& def);

// Runs a host tool and waits; the error holds its stderr.
Status RunTool(const std::vector<std::string>& argv);

class NetworkHost {
 public:
  explicit NetworkHost(std::string run_dir) : run_dir_(std::move(run_dir)) {}
  // Creates what the network needs (bridge, address, nft table, dnsmasq).
  Status Start(const NetworkDef& def) const;
  // Undoes Start; goes on past failures and reports the first.
  Status Stop(const NetworkDef& def) const;
  bool IsActive(const NetworkDef& def) const;
  // dnsmasq's pid, 0 when not running.
  int DnsmasqPid(const NetworkDef& def) const;

  // A persistent tap (vnet_hdr, as vireo opens it) joined to `bridge`, up.
  static Status CreateTap(const std::string& tap, const std::string& bridge,
                          const std::string& mac);
  static void DeleteTap(const std::string& tap);
  static bool LinkExists(const std::string& name);

 private:
  std::string run_dir_;
};

}  // namespace vireo::mgmt
