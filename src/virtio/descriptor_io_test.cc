#include "virtio/descriptor_io.h"

#include <gtest/gtest.h>

#include <array>
#include <numeric>
#include <vector>

#include "virtio/testing/driver.h"

namespace vireo::virtio {
namespace {

using testing::TestBuffer;
using testing::TestDriver;

constexpr GuestAddress kData = 0x40000;

class DescriptorIoTest : public ::testing::Test {
 protected:
  DescriptorIoTest() : memory_(testing::MakeTestMemory()), driver_(memory_, 16), queue_(16) {
    driver_.Configure(queue_);
    EXPECT_TRUE(queue_.Activate(memory_));
  }
  void PopChain(std::vector<TestBuffer> buffers) {
    driver_.AddChain(buffers);
    ASSERT_EQ(queue_.Pop(memory_, chain_), PopResult::kChain);
  }

  GuestMemory memory_;
  TestDriver driver_;
  Queue queue_;
  DescriptorChain chain_;
};

TEST_F(DescriptorIoTest, ReaderCrossesBuffersInOrder) {
  std::vector<uint8_t> bytes(12);
  std::iota(bytes.begin(), bytes.end(), 1);
  memory_.Write(kData, std::span(bytes).first(5));
  memory_.Write(kData + 0x100, std::span(bytes).subspan(5));
  PopChain({{kData, 5, false}, {kData + 0x100, 7, false}, {kData + 0x200, 8, true}});

  ChainReader reader(memory_, chain_);
  EXPECT_EQ(reader.remaining(), 12u);
  auto first = reader.ReadObj<uint16_t>();
  ASSERT_TRUE(first);
  EXPECT_EQ(*first, 0x0201);
  std::array<uint8_t, 6> middle{};
  EXPECT_EQ(reader.Read(middle), 6u);  // crosses the buffer boundary
  EXPECT_EQ(middle, (std::array<uint8_t, 6>{3, 4, 5, 6, 7, 8}));
  EXPECT_EQ(reader.Skip(1), 1u);
  std::array<uint8_t, 8> rest{};
  EXPECT_EQ(reader.Read(rest), 3u);  // short at the end: writable bytes are not readable
  EXPECT_EQ(rest[0], 10);
  EXPECT_EQ(rest[2], 12);
  EXPECT_EQ(reader.remaining(), 0u);
  EXPECT_EQ(reader.bytes_read(), 12u);
  EXPECT_FALSE(reader.ReadObj<uint8_t>());
}

TEST_F(DescriptorIoTest, ReadObjDoesNotConsumeWhenTooShort) {
  PopChain({{kData, 3, false}});
  ChainReader reader(memory_, chain_);
  EXPECT_FALSE(reader.ReadObj<uint32_t>());
  EXPECT_EQ(reader.remaining(), 3u);
}

TEST_F(DescriptorIoTest, WriterFillsWritableBuffersOnly) {
  std::vector<uint8_t> zeros(0x400);
  memory_.Write(kData, zeros);
  PopChain({{kData, 4, false}, {kData + 0x100, 3, true}, {kData + 0x200, 5, true}});

  ChainWriter writer(memory_, chain_);
  EXPECT_EQ(writer.remaining(), 8u);
  EXPECT_TRUE(writer.WriteObj<uint16_t>(0xbbaa));
  std::array<uint8_t, 10> data;
  std::iota(data.begin(), data.end(), 0x10);
  EXPECT_EQ(writer.Write(data), 6u);  // short: only 6 bytes of room left
  EXPECT_EQ(writer.bytes_written(), 8u);
  EXPECT_EQ(writer.remaining(), 0u);
  EXPECT_FALSE(writer.WriteObj<uint8_t>(1));

  EXPECT_EQ(memory_.ReadObj<uint8_t>(kData), 0);  // readable buffer untouched
  EXPECT_EQ(memory_.ReadObj<uint16_t>(kData + 0x100), 0xbbaa);
  EXPECT_EQ(memory_.ReadObj<uint8_t>(kData + 0x102), 0x10);
  EXPECT_EQ(memory_.ReadObj<uint8_t>(kData + 0x200), 0x11);
  EXPECT_EQ(memory_.ReadObj<uint8_t>(kData + 0x204), 0x15);
  EXPECT_EQ(memory_.ReadObj<uint8_t>(kData + 0x205), 0);  // nothing past the buffer
}

TEST_F(DescriptorIoTest, EmptyChainsReadAndWriteNothing) {
  PopChain({{kData, 0, false}});
  ChainReader reader(memory_, chain_);
  ChainWriter writer(memory_, chain_);
  std::array<uint8_t, 4> data{};
  EXPECT_EQ(reader.Read(data), 0u);
  EXPECT_EQ(writer.Write(data), 0u);
  EXPECT_EQ(reader.Skip(100), 0u);
}

}  // namespace
}  // namespace vireo::virtio
