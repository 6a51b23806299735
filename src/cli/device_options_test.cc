#include "cli/device_options.h"

#include <gtest/gtest.h>

namespace vireo::cli {
namespace {

TEST(ParseDiskOption, AllKeys) {
  auto disk = ParseDiskOption("path=/tmp/d.img,readonly=on,serial=abc,cache=none,discard=on");
  ASSERT_TRUE(disk) << disk.error().message;
  EXPECT_EQ(disk->path, "/tmp/d.img");
  EXPECT_TRUE(disk->read_only);
  EXPECT_EQ(disk->serial, "abc");
  EXPECT_TRUE(disk->cache_none);
  EXPECT_TRUE(disk->discard);
}

TEST(ParseDiskOption, DefaultsAreWritableWritebackNoDiscard) {
  auto disk = ParseDiskOption("path=d.img");
  ASSERT_TRUE(disk);
  EXPECT_FALSE(disk->read_only);
  EXPECT_FALSE(disk->cache_none);
  EXPECT_FALSE(disk->discard);
}

TEST(ParseDiskOption, ErrorsNameTheKey) {
  auto unknown = ParseDiskOption("path=d.img,speed=fast");
  ASSERT_FALSE(unknown);
  EXPECT_NE(unknown.error().message.find("unknown key 'speed'"), std::string::npos);
  EXPECT_FALSE(ParseDiskOption("readonly=on"));  // no path
  EXPECT_FALSE(ParseDiskOption("path=d.img,readonly=maybe"));
  EXPECT_FALSE(ParseDiskOption("path=d.img,path=e.img"));
  EXPECT_FALSE(ParseDiskOption("path=d.img,cache=sometimes"));
  EXPECT_FALSE(ParseDiskOption("path=d.img,serial=012345678901234567890"));  // 21 bytes
  EXPECT_FALSE(ParseDiskOption("d.img"));
}

TEST(ParseNetOption, TapAndMac) {
  auto net = ParseNetOption("tap=vireo0,mac=52:54:00:12:34:56");
  ASSERT_TRUE(net) << net.error().message;
  EXPECT_EQ(net->tap, "vireo0");
  EXPECT_EQ(net->mac, "52:54:00:12:34:56");
  EXPECT_FALSE(ParseNetOption("mac=52:54:00:12:34:56"));  // no tap
  EXPECT_FALSE(ParseNetOption("tap=a-very-long-interface-name"));
  EXPECT_FALSE(ParseNetOption("tap=t0,speed=10G"));
}

TEST(ParseTransport, MmioOrPci) {
  EXPECT_EQ(*ParseTransport("mmio"), VirtioTransport::kMmio);
  EXPECT_EQ(*ParseTransport("pci"), VirtioTransport::kPci);
  EXPECT_FALSE(ParseTransport("isa"));
}

}  // namespace
}  // namespace vireo::cli
