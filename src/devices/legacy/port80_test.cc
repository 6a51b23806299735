#include "devices/legacy/port80.h"

#include <gtest/gtest.h>

#include "devices/testing/fakes.h"

namespace vireo {
namespace {

using testing::ReadByte;
using testing::WriteByte;

TEST(Port80, RecordsLastCodeAndCountsWrites) {
  Port80 dev;
  EXPECT_EQ(ReadByte(dev, 0), 0);
  WriteByte(dev, 0, 0x12);
  WriteByte(dev, 0, 0xd4);
  EXPECT_EQ(dev.last_value(), 0xd4);
  EXPECT_EQ(dev.write_count(), 2u);
  EXPECT_EQ(ReadByte(dev, 0), 0xd4);
}

}  // namespace
}  // namespace vireo
