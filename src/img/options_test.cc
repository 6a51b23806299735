#include "img/options.h"

#include <gtest/gtest.h>

namespace vireo::img {
namespace {

using block::ImageFormat;
using block::qcow2::CompressionType;

TEST(CreateOptionsTest, ParsesEveryQcow2Key) {
  auto s = ParseCreateOptions("cluster_size=64k,compression_type=zstd,compat=1.1,lazy_refcounts=on",
                              ImageFormat::kQcow2);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->qcow2.cluster_size, 65536u);
  EXPECT_EQ(s->qcow2.compression, CompressionType::kZstd);
  EXPECT_EQ(s->qcow2.version, 3);
  EXPECT_TRUE(s->qcow2.lazy_refcounts);
  EXPECT_FALSE(s->size_given);
}

TEST(CreateOptionsTest, DefaultsWhenEmpty) {
  auto s = ParseCreateOptions("", ImageFormat::kQcow2);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->qcow2.cluster_size, 65536u);
  EXPECT_EQ(s->qcow2.compression, CompressionType::kZlib);
  EXPECT_EQ(s->qcow2.version, 3);
  EXPECT_FALSE(s->qcow2.lazy_refcounts);
}

TEST(CreateOptionsTest, CompatAndSizes) {
  auto s = ParseCreateOptions("compat=0.10,cluster_size=512,size=1G", ImageFormat::kQcow2);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->qcow2.version, 2);
  EXPECT_EQ(s->qcow2.cluster_size, 512u);
  EXPECT_TRUE(s->size_given);
  EXPECT_EQ(s->size, 1ull << 30);
  s = ParseCreateOptions("cluster_size=2M,backing_file=base.img,backing_fmt=raw",
                         ImageFormat::kQcow2);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->qcow2.cluster_size, 2u << 20);
  EXPECT_EQ(s->qcow2.backing_file, "base.img");
  EXPECT_EQ(s->qcow2.backing_format, "raw");
}

// Each bad option is refused with a message naming the key and the value.
TEST(CreateOptionsTest, RefusesBadValuesByName) {
  struct Case {
    const char* text;
    const char* expect;
  };
  for (const Case& c :
       {Case{"cluster_size=3k", "cluster_size=3k"}, Case{"cluster_size=4M", "cluster_size=4M"},
        Case{"cluster_size=256", "cluster_size=256"},
        Case{"compression_type=lz4", "compression_type=lz4"}, Case{"compat=2.0", "compat=2.0"},
        Case{"lazy_refcounts=maybe", "lazy_refcounts=maybe"},
        Case{"refcount_bits=8", "refcount_bits=8"}, Case{"extended_l2=on", "extended_l2=on"},
        Case{"foo=bar", "foo"}, Case{"cluster_size", "KEY=VALUE"},
        Case{"compat=0.10,compression_type=zstd", "compat=1.1"},
        Case{"compat=0.10,lazy_refcounts=on", "compat=1.1"},
        Case{"compat=1.1,compat=0.10", "twice"}, Case{"backing_fmt=vmdk", "vmdk"}}) {
    auto s = ParseCreateOptions(c.text, ImageFormat::kQcow2);
    ASSERT_FALSE(s) << c.text;
    EXPECT_NE(s.error().message.find(c.expect), std::string::npos)
        << c.text << " -> " << s.error().message;
  }
}

TEST(CreateOptionsTest, RawTakesOnlySize) {
  auto s = ParseCreateOptions("size=10M,preallocation=off", ImageFormat::kRaw);
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->size, 10u << 20);
  auto bad = ParseCreateOptions("cluster_size=64k", ImageFormat::kRaw);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("for raw"), std::string::npos) << bad.error().message;
}

TEST(CreateOptionsTest, JoinsRepeatedOptions) {
  EXPECT_EQ(JoinOptionTexts({"cluster_size=4k", "", "compat=0.10"}), "cluster_size=4k,compat=0.10");
  auto s =
      ParseCreateOptions(JoinOptionTexts({"cluster_size=4k", "compat=0.10"}), ImageFormat::kQcow2);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->qcow2.cluster_size, 4096u);
  EXPECT_EQ(s->qcow2.version, 2);
}

TEST(SizeTest, QemuStyleSuffixes) {
  EXPECT_EQ(*ParseImgSize("4096"), 4096u);
  EXPECT_EQ(*ParseImgSize("64k"), 65536u);
  EXPECT_EQ(*ParseImgSize("64K"), 65536u);
  EXPECT_EQ(*ParseImgSize("10M"), 10u << 20);
  EXPECT_EQ(*ParseImgSize("1G"), 1ull << 30);
  EXPECT_EQ(*ParseImgSize("2T"), 2ull << 40);
  EXPECT_FALSE(ParseImgSize("ten"));
  EXPECT_FALSE(ParseImgSize("10X"));
  EXPECT_FALSE(ParseImgSize(""));
}

TEST(SizeTest, ResizeRelativeAndAbsolute) {
  const uint64_t g = 1ull << 30;
  EXPECT_EQ(*ParseResizeSize("+1G", g), 2 * g);
  EXPECT_EQ(*ParseResizeSize("-512M", g), g / 2);
  EXPECT_EQ(*ParseResizeSize("3G", g), 3 * g);
  EXPECT_FALSE(ParseResizeSize("-1G", g));  // Zero bytes left: qemu-img refuses it too.
  EXPECT_FALSE(ParseResizeSize("-2G", g));
  EXPECT_FALSE(ParseResizeSize("+", g));
  EXPECT_FALSE(ParseResizeSize("", g));
}

// The strings qemu-img 7.2 prints for the same byte counts (its size_to_str).
TEST(HumanSizeTest, MatchesQemuImg) {
  EXPECT_EQ(HumanSize(0), "0 B");
  EXPECT_EQ(HumanSize(512), "512 B");
  EXPECT_EQ(HumanSize(4096), "4 KiB");
  EXPECT_EQ(HumanSize(397312), "388 KiB");
  EXPECT_EQ(HumanSize(1323008), "1.26 MiB");
  EXPECT_EQ(HumanSize(67108864), "64 MiB");
  EXPECT_EQ(HumanSize(10485760), "10 MiB");
  EXPECT_EQ(HumanSize(1ull << 30), "1 GiB");
  EXPECT_EQ(HumanSize(1000 * 1024), "0.977 MiB");  // The unit switches at 1000, not 1024.
  EXPECT_EQ(HumanSize(999 * 1024), "999 KiB");
}

TEST(FormatOptionTest, NamesAndErrors) {
  EXPECT_EQ(*ParseFormatOption("", "-f"), ImageFormat::kAuto);
  EXPECT_EQ(*ParseFormatOption("raw", "-f"), ImageFormat::kRaw);
  EXPECT_EQ(*ParseFormatOption("qcow2", "-O"), ImageFormat::kQcow2);
  auto bad = ParseFormatOption("vmdk", "-O");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("-O vmdk"), std::string::npos);
}

}  // namespace
}  // namespace vireo::img
