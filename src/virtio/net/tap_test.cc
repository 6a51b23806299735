#include "virtio/net/tap.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <net/if.h>
#include <sys/ioctl.h>

#include "virtio/net/test_netns.h"

namespace vireo::virtio {
namespace {

class TapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto skip = testing::EnterPrivateNetns()) GTEST_SKIP() << *skip;
  }
};

TEST_F(TapTest, OpensNonBlockingAndProbesOffloads) {
  auto tap = Tap::Open("vtap0");
  ASSERT_TRUE(tap) << tap.error().message;
  EXPECT_EQ(tap->name(), "vtap0");
  EXPECT_TRUE(::fcntl(tap->fd(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(tap->fd(), F_GETFD) & FD_CLOEXEC);
  const unsigned supported = tap->supported_offloads();
  EXPECT_EQ(supported & ~Tap::kKnownOffloads, 0u);
  EXPECT_EQ(supported & (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6),
            TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
  EXPECT_EQ(tap->offloads(), 0u);

  int hdr_size = 0;
  ASSERT_EQ(::ioctl(tap->fd(), TUNGETVNETHDRSZ, &hdr_size), 0);
  EXPECT_EQ(hdr_size, Tap::kVnetHdrSize);
  ifreq ifr{};
  ASSERT_EQ(::ioctl(tap->fd(), TUNGETIFF, &ifr), 0);
  EXPECT_EQ(ifr.ifr_flags & (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE),
            IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
}

TEST_F(TapTest, SetOffloadsChecksFlags) {
  auto tap = Tap::Open("vtap0");
  ASSERT_TRUE(tap) << tap.error().message;
  ASSERT_TRUE(tap->SetOffloads(TUN_F_CSUM | TUN_F_TSO4));
  EXPECT_EQ(tap->offloads(), unsigned{TUN_F_CSUM | TUN_F_TSO4});
  EXPECT_FALSE(tap->SetOffloads(TUN_F_TSO4));  // TSO without CSUM
  EXPECT_FALSE(tap->SetOffloads(0x4000));      // not a flag we know
  ASSERT_TRUE(tap->SetOffloads(0));
  EXPECT_EQ(tap->offloads(), 0u);
}

TEST_F(TapTest, KernelPicksANameWhenNoneIsGiven) {
  auto tap = Tap::Open("");
  ASSERT_TRUE(tap) << tap.error().message;
  EXPECT_EQ(tap->name().rfind("vireo", 0), 0u) << tap->name();
}

TEST_F(TapTest, ErrorsNameTheFix) {
  auto first = Tap::Open("vtap0");
  ASSERT_TRUE(first) << first.error().message;
  auto busy = Tap::Open("vtap0");
  ASSERT_FALSE(busy);
  EXPECT_NE(busy.error().message.find("in use"), std::string::npos) << busy.error().message;

  auto other_kind = Tap::Open("lo");
  ASSERT_FALSE(other_kind);
  EXPECT_NE(other_kind.error().message.find("not a single-queue tap"), std::string::npos)
      << other_kind.error().message;

  auto too_long = Tap::Open("a-very-long-tap-name");
  ASSERT_FALSE(too_long);
  EXPECT_NE(too_long.error().message.find("at most 15"), std::string::npos);
}

TEST_F(TapTest, SetMtu) {
  auto tap = Tap::Open("vtap0");
  ASSERT_TRUE(tap) << tap.error().message;
  EXPECT_TRUE(tap->SetMtu(9000));
  EXPECT_FALSE(tap->SetMtu(10));  // below the Ethernet minimum
}

}  // namespace
}  // namespace vireo::virtio
