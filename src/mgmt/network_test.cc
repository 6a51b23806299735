#include "mgmt/network.h"

#include <gtest/gtest.h>

namespace vireo::mgmt {
namespace {

TEST(NetworkXml, ParsesLibvirtsDefaultNetwork) {
  // libvirt's own /usr/share/libvirt/networks/default.xml.
  std::vector<std::string> warnings;
  auto def = ParseNetworkXml(R"(<network>
  <name>default</name>
  <forward mode='nat'/>
  <bridge name='virbr0' stp='on' delay='0'/>
  <mac address='52:54:00:0a:cd:21'/>
  <ip address='192.168.122.1' netmask='255.255.255.0'>
    <dhcp><range start='192.168.122.2' end='192.168.122.254'/></dhcp>
  </ip>
</network>)",
                             &warnings);
  ASSERT_TRUE(def) << def.error().message;
  EXPECT_EQ(def->name, "default");
  EXPECT_EQ(def->forward, "nat");
  EXPECT_EQ(def->bridge, "virbr0");
  EXPECT_EQ(def->address, "192.168.122.1");
  EXPECT_EQ(def->prefix, 24);
  EXPECT_EQ(def->dhcp_start, "192.168.122.2");
  EXPECT_EQ(warnings, std::vector<std::string>{"unsupported element /network/mac"});
  auto again = ParseNetworkXml(NetworkToXml(*def), nullptr);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(NetworkToXml(*again), NetworkToXml(*def));
}

TEST(NetworkXml, BridgedModeNeedsOnlyTheBridge) {
  auto def = ParseNetworkXml(
      "<network><name>host</name><forward mode='bridge'/><bridge name='br0'/></network>", nullptr);
  ASSERT_TRUE(def) << def.error().message;
  EXPECT_EQ(def->forward, "bridge");
  EXPECT_TRUE(def->address.empty());
}

TEST(NetworkXml, ErrorsNameTheProblem) {
  struct Case {
    const char* xml;
    const char* error;
  };
  Case cases[] = {
      {"<network><name>n</name><ip address='10.0.0.1' prefix='24'/></network>",
       "network 'n': needs <bridge name='...'/>"},
      {"<network><name>n</name><bridge name='averyveryverylongbridge'/><ip "
       "address='10.0.0.1'/></network>",
       "bridge name 'averyveryverylongbridge': longer than 15 characters"},
      {"<network><name>n</name><bridge name='b'/><ip address='10.0.0.300' prefix='24'/></network>",
       "ip address '10.0.0.300': not an IPv4 address"},
      {"<network><name>n</name><bridge name='b'/><ip address='10.0.0.1' "
       "netmask='255.0.255.0'/></network>",
       "ip netmask '255.0.255.0': not a contiguous mask"},
      {"<network><name>n</name><bridge name='b'/><ip address='10.0.0.1' prefix='24'><dhcp><range "
       "start='10.0.1.2' end='10.0.1.9'/></dhcp></ip></network>",
       "dhcp/range 10.0.1.2-10.0.1.9: must lie in 10.0.0.0/24 and start <= end"},
      {"<network><name>n</name><forward mode='macvtap'/><bridge name='b'/></network>",
       "forward mode 'macvtap': Vireo supports nat, bridge and none (no <forward>)"},
      {"<domain/>", "XML: the root element is <domain>, expected <network>"},
      {"<network><name>a/x</name><bridge name='b'/></network>",
       "network name 'a/x': only letters, digits and _ . + - are allowed"},
  };
  for (const Case& c : cases) {
    auto def = ParseNetworkXml(c.xml, nullptr);
    ASSERT_FALSE(def) << c.xml;
    EXPECT_EQ(def.error().message, c.error);
  }
}

TEST(RunTool, ReportsTheToolsOwnError) {
  EXPECT_TRUE(RunTool({"true"}));
  auto failed = RunTool({"sh", "-c", "echo 'no such device' >&2; exit 2"});
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().message,
            "'sh -c echo 'no such device' >&2; exit 2' failed: no such device");
  auto missing = RunTool({"/nonexistent/tool"});
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message.find("cannot run it"), std::string::npos);
}

}  // namespace
}  // namespace vireo::mgmt
