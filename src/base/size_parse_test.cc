#include "base/size_parse.h"

#include <gtest/gtest.h>

namespace vireo {
namespace {

TEST(ParseSize, BareNumberIsMibForMemory) { EXPECT_EQ(*ParseSize("512", true), 512ull << 20); }
TEST(ParseSize, BareNumberIsBytesOtherwise) { EXPECT_EQ(*ParseSize("4096", false), 4096u); }
TEST(ParseSize, SuffixesAreCaseInsensitive) {
  EXPECT_EQ(*ParseSize("2g", true), 2ull << 30);
  EXPECT_EQ(*ParseSize("1KiB", true), 1024u);
  EXPECT_EQ(*ParseSize("3M", false), 3ull << 20);
}
TEST(ParseSize, RejectsGarbageWithMessage) {
  auto r = ParseSize("lots", true);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().message.find("invalid size"), std::string::npos);
  EXPECT_FALSE(ParseSize("12Q", true));
}
TEST(ParseSize, RejectsOverflow) { EXPECT_FALSE(ParseSize("99999999999T", true)); }

}  // namespace
}  // namespace vireo
