#include "virtio/net/mac.h"

#include <gtest/gtest.h>

namespace vireo::virtio {
namespace {

TEST(MacTest, ParsesColonAndDashForms) {
  auto mac = ParseMac("52:54:00:ab:CD:ef");
  ASSERT_TRUE(mac) << mac.error().message;
  EXPECT_EQ(*mac, (MacAddress{0x52, 0x54, 0x00, 0xab, 0xcd, 0xef}));
  auto dashed = ParseMac("02-00-00-00-00-01");
  ASSERT_TRUE(dashed) << dashed.error().message;
  EXPECT_EQ((*dashed)[5], 1);
  EXPECT_EQ(FormatMac(*mac), "52:54:00:ab:cd:ef");
}

TEST(MacTest, RejectsMalformedAndMulticast) {
  for (const char* text : {"", "52:54:00:12:34", "52:54:00:12:34:5g", "52:54:00:12:34:567",
                           "52:54-00:12:34:56", "52.54.00.12.34.56", "525400123456"}) {
    EXPECT_FALSE(ParseMac(text)) << text;
  }
  auto multicast = ParseMac("01:00:5e:00:00:01");
  ASSERT_FALSE(multicast);
  EXPECT_NE(multicast.error().message.find("multicast"), std::string::npos);
}

TEST(MacTest, RandomIsLocallyAdministeredUnicast) {
  const MacAddress a = RandomMac();
  const MacAddress b = RandomMac();
  for (const MacAddress& mac : {a, b}) {
    EXPECT_EQ(mac[0] & 0x01, 0);  // unicast
    EXPECT_EQ(mac[0] & 0x02, 2);  // locally administered
  }
  EXPECT_NE(a, b);  // 46 random bits
}

}  // namespace
}  // namespace vireo::virtio
