#include "virtio/vsock/host_socket.h"

#include <gtest/gtest.h>

#include <string>

namespace vireo::virtio::vsock {
namespace {

TEST(VsockConnectLine, ParsesOnlyTheExactForm) {
  EXPECT_EQ(ParseConnectLine("CONNECT 1234"), 1234u);
  EXPECT_EQ(ParseConnectLine("CONNECT 0"), 0u);
  EXPECT_EQ(ParseConnectLine("CONNECT 4294967295"), 4294967295u);
  for (const char* bad :
       {"", "CONNECT", "CONNECT ", "connect 1", "CONNECT  1", "CONNECT 1 ", "CONNECT -1",
        "CONNECT +1", "CONNECT 4294967296", "CONNECT 12a", "CONNECT 99999999999", "CONNEC 12"}) {
    EXPECT_FALSE(ParseConnectLine(bad).has_value()) << bad;
  }
}

TEST(VsockSpec, ParsesCidAndUds) {
  auto options = ParseVsockSpec("cid=3,uds=/tmp/v.sock");
  ASSERT_TRUE(options) << options.error().message;
  EXPECT_EQ(options->guest_cid, 3u);
  EXPECT_EQ(options->uds_path, "/tmp/v.sock");
  options = ParseVsockSpec("uds=/x,cid=52");
  ASSERT_TRUE(options);
  EXPECT_EQ(options->guest_cid, 52u);
}

TEST(VsockSpec, RefusesBadSpecs) {
  for (const char* bad :
       {"", "cid=3", "uds=/x", "cid=2,uds=/x", "cid=0,uds=/x", "cid=4294967295,uds=/x",
        "cid=x,uds=/x", "cid=3,uds=", "cid=3,uds=/x,y=1", "cid=3;uds=/x", "cid"}) {
    EXPECT_FALSE(ParseVsockSpec(bad)) << bad;
  }
  EXPECT_FALSE(ParseVsockSpec("cid=3,uds=/" + std::string(100, 'a')));  // no room for _<port>
}

TEST(VsockSpec, PortSocketPath) {
  EXPECT_EQ(PortSocketPath("/run/v.sock", 5000), "/run/v.sock_5000");
}

TEST(VsockUnix, ListenRefusesToReplaceARegularFile) {
  char dir[] = "/tmp/vsock-test-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/file";
  FILE* f = std::fopen(path.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fclose(f);
  EXPECT_FALSE(ListenUnix(path));
  ::unlink(path.c_str());
  auto listener = ListenUnix(path);
  ASSERT_TRUE(listener) << listener.error().message;
  EXPECT_TRUE(ConnectUnix(path));
  EXPECT_TRUE(ListenUnix(path));  // a stale socket is replaced
  EXPECT_FALSE(ConnectUnix(path + "_1"));
  ::unlink(path.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace vireo::virtio::vsock
