#include "virtio/blk_request.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

#include "base/bytes.h"
#include "virtio/testing/driver.h"

namespace vireo::virtio {
namespace {

using testing::TestBuffer;
using testing::TestDriver;

constexpr GuestAddress kHeader = 0x40000;
constexpr GuestAddress kData = 0x50000;
constexpr GuestAddress kStatus = 0x4f000;
constexpr GuestAddress kTable = 0x30000;
constexpr uint64_t kCapacity = 2048;  // sectors

class BlkRequestTest : public ::testing::Test {
 protected:
  BlkRequestTest() : memory_(testing::MakeTestMemory()), driver_(memory_, 16), queue_(256) {
    driver_.Configure(queue_);
    queue_.set_indirect_desc(true);
    EXPECT_TRUE(queue_.Activate(memory_));
    limits_.capacity_sectors = kCapacity;
    limits_.discard = limits_.write_zeroes = true;
    limits_.max_discard_sectors = limits_.max_write_zeroes_sectors = 1024;
    limits_.max_discard_seg = limits_.max_write_zeroes_seg = 4;
  }
  void WriteHeader(uint32_t type, uint64_t sector) {
    memory_.WriteObj(kHeader, BlkRequestHeader{type, 0, sector});
  }
  // Pops the chain of `buffers` and parses it.
  BlkRequest Parse(std::vector<TestBuffer> buffers, bool indirect = false) {
    if (indirect) {
      driver_.AddIndirectChain(kTable, buffers);
    } else {
      driver_.AddChain(buffers);
    }
    EXPECT_EQ(queue_.Pop(memory_, chain_), PopResult::kChain);
    BlkRequest request;
    ParseBlkRequest(memory_, chain_, limits_, iov_, request);
    return request;
  }
  BlkRequest ParseSimple(uint32_t type, uint64_t sector, uint32_t data_len, bool data_writable) {
    WriteHeader(type, sector);
    return Parse({{kHeader, 16, false}, {kData, data_len, data_writable}, {kStatus, 1, true}});
  }

  GuestMemory memory_;
  TestDriver driver_;
  Queue queue_;
  DescriptorChain chain_;
  BlkLimits limits_;
  std::vector<iovec> iov_ = std::vector<iovec>(256);
};

TEST_F(BlkRequestTest, ParsesRead) {
  BlkRequest r = ParseSimple(kBlkTIn, 8, 4096, true);
  EXPECT_EQ(r.error, BlkError::kNone);
  EXPECT_EQ(r.op, BlkOp::kRead);
  EXPECT_EQ(r.status(), kBlkSOk);
  EXPECT_EQ(r.offset(), 4096u);
  EXPECT_EQ(r.data_len, 4096u);
  ASSERT_EQ(r.iov_count, 1u);
  EXPECT_EQ(iov_[0].iov_len, 4096u);
  EXPECT_EQ(iov_[0].iov_base, memory_.Span(kData, 1)->data());
  EXPECT_TRUE(r.has_status);
  EXPECT_EQ(r.status_addr, kStatus);
}

TEST_F(BlkRequestTest, ParsesWriteWithHeaderAndDataInOneBuffer) {
  memory_.WriteObj(kData, BlkRequestHeader{kBlkTOut, 3, 2});
  BlkRequest r = Parse({{kData, 16 + 1024, false}, {kStatus, 1, true}});
  EXPECT_EQ(r.error, BlkError::kNone);
  EXPECT_EQ(r.op, BlkOp::kWrite);
  EXPECT_EQ(r.sector, 2u);
  ASSERT_EQ(r.iov_count, 1u);
  EXPECT_EQ(iov_[0].iov_base, memory_.Span(kData + 16, 1)->data());
  EXPECT_EQ(iov_[0].iov_len, 1024u);
}

TEST_F(BlkRequestTest, StatusSharesTheLastDataBuffer) {
  WriteHeader(kBlkTIn, 0);
  BlkRequest r = Parse({{kHeader, 16, false}, {kData, 513, true}});
  EXPECT_EQ(r.error, BlkError::kNone);
  EXPECT_EQ(r.status_addr, kData + 512);
  ASSERT_EQ(r.iov_count, 1u);
  EXPECT_EQ(iov_[0].iov_len, 512u);
}

TEST_F(BlkRequestTest, MissingStatusByte) {
  WriteHeader(kBlkTOut, 0);
  BlkRequest r = Parse({{kHeader, 16, false}, {kData, 512, false}});
  EXPECT_FALSE(r.has_status);
  EXPECT_EQ(r.error, BlkError::kNoStatus);
}

TEST_F(BlkRequestTest, ShortOrWritableHeader) {
  WriteHeader(kBlkTIn, 0);
  EXPECT_EQ(Parse({{kHeader, 8, false}, {kStatus, 1, true}}).error, BlkError::kShortHeader);
  BlkRequest r = Parse({{kHeader, 16, true}, {kStatus, 1, true}});
  EXPECT_EQ(r.error, BlkError::kShortHeader);
  EXPECT_EQ(r.status(), kBlkSIoErr);
  EXPECT_EQ(r.status_addr, kStatus);
}

TEST_F(BlkRequestTest, DataLengthMustBeSectorMultiple) {
  EXPECT_EQ(ParseSimple(kBlkTIn, 0, 1000, true).error, BlkError::kBadLength);
  EXPECT_EQ(ParseSimple(kBlkTOut, 0, 511, false).error, BlkError::kBadLength);
}

TEST_F(BlkRequestTest, WrongDirectionData) {
  EXPECT_EQ(ParseSimple(kBlkTIn, 0, 512, false).error, BlkError::kWrongDirection);
  EXPECT_EQ(ParseSimple(kBlkTOut, 0, 512, true).error, BlkError::kWrongDirection);
  EXPECT_EQ(ParseSimple(kBlkTFlush, 0, 512, false).error, BlkError::kWrongDirection);
}

TEST_F(BlkRequestTest, RangeChecksAreOverflowSafe) {
  EXPECT_EQ(ParseSimple(kBlkTIn, kCapacity - 1, 512, true).error, BlkError::kNone);
  EXPECT_EQ(ParseSimple(kBlkTIn, kCapacity - 1, 1024, true).error, BlkError::kOutOfRange);
  EXPECT_EQ(ParseSimple(kBlkTIn, kCapacity, 512, true).error, BlkError::kOutOfRange);
  EXPECT_EQ(ParseSimple(kBlkTIn, UINT64_MAX, 512, true).error, BlkError::kOutOfRange);
  // sector * 512 wraps to a small number here.
  EXPECT_EQ(ParseSimple(kBlkTOut, (1ull << 55) + 1, 512, false).error, BlkError::kOutOfRange);
  EXPECT_TRUE(BlkRangeFits(0, 0, 0));
  EXPECT_TRUE(BlkRangeFits(UINT64_MAX, 0, UINT64_MAX));
  EXPECT_FALSE(BlkRangeFits(UINT64_MAX - 1, 1024, UINT64_MAX));
  EXPECT_FALSE(BlkRangeFits(1, UINT64_MAX, 1000));
  EXPECT_TRUE(BlkRangeFits(0, 512 * 1000, 1000));
  EXPECT_FALSE(BlkRangeFits(0, 512 * 1000 + 1, 1000));
  EXPECT_FALSE(BlkRangeFits(999, 513, 1000));
}

TEST_F(BlkRequestTest, ReadOnlyRefusesWrites) {
  limits_.read_only = true;
  EXPECT_EQ(ParseSimple(kBlkTOut, 0, 512, false).error, BlkError::kReadOnly);
  EXPECT_EQ(ParseSimple(kBlkTIn, 0, 512, true).error, BlkError::kNone);
}

TEST_F(BlkRequestTest, TooManyDataBuffers) {
  WriteHeader(kBlkTIn, 0);
  std::vector<TestBuffer> buffers{{kHeader, 16, false}};
  for (int i = 0; i < 300; ++i) buffers.push_back({kData + 512ull * i, 512, true});
  buffers.push_back({kStatus, 1, true});
  BlkRequest r = Parse(buffers, /*indirect=*/true);
  EXPECT_EQ(r.error, BlkError::kTooManySegments);
  EXPECT_EQ(r.status(), kBlkSIoErr);
}

TEST_F(BlkRequestTest, FlushAndGetId) {
  WriteHeader(kBlkTFlush, 0);
  EXPECT_EQ(Parse({{kHeader, 16, false}, {kStatus, 1, true}}).op, BlkOp::kFlush);
  BlkRequest r = ParseSimple(kBlkTGetId, 0, 20, true);
  EXPECT_EQ(r.op, BlkOp::kGetId);
  EXPECT_EQ(r.data_len, 20u);
}

TEST_F(BlkRequestTest, UnknownTypesAreUnsupported) {
  for (uint32_t type : {kBlkTGetLifetime, kBlkTSecureErase, 2u, 0xffffffffu}) {
    WriteHeader(type, 0);
    BlkRequest r = Parse({{kHeader, 16, false}, {kStatus, 1, true}});
    EXPECT_EQ(r.error, BlkError::kUnsupported);
    EXPECT_EQ(r.status(), kBlkSUnsupp);
  }
}

TEST_F(BlkRequestTest, ParsesDiscardSegments) {
  WriteHeader(kBlkTDiscard, 0);
  const BlkDwzSegment segments[] = {{8, 16, 0}, {100, 1, 0}};
  memory_.Write(kData, AsBytes(segments));
  BlkRequest r = Parse({{kHeader, 16, false}, {kData, 32, false}, {kStatus, 1, true}});
  EXPECT_EQ(r.error, BlkError::kNone);
  EXPECT_EQ(r.op, BlkOp::kDiscard);
  ASSERT_EQ(r.segment_count, 2u);
  EXPECT_EQ(r.segments[1].sector, 100u);
}

TEST_F(BlkRequestTest, DiscardAndWriteZeroesErrors) {
  auto parse = [&](uint32_t type, std::vector<BlkDwzSegment> segments) {
    WriteHeader(type, 0);
    memory_.Write(kData, {reinterpret_cast<const uint8_t*>(segments.data()), 16 * segments.size()});
    return Parse({{kHeader, 16, false},
                  {kData, static_cast<uint32_t>(16 * segments.size()), false},
                  {kStatus, 1, true}})
        .error;
  };
  EXPECT_EQ(parse(kBlkTDiscard, {{0, 8, kBlkDwzFlagUnmap}}), BlkError::kBadFlags);
  EXPECT_EQ(parse(kBlkTWriteZeroes, {{0, 8, kBlkDwzFlagUnmap}}), BlkError::kNone);
  EXPECT_EQ(parse(kBlkTWriteZeroes, {{0, 8, 2}}), BlkError::kBadFlags);
  EXPECT_EQ(parse(kBlkTDiscard, {{0, 2048, 0}}), BlkError::kTooLarge);
  EXPECT_EQ(parse(kBlkTDiscard, {{2040, 16, 0}}), BlkError::kOutOfRange);
  EXPECT_EQ(parse(kBlkTDiscard, {{UINT64_MAX, 1, 0}}), BlkError::kOutOfRange);
  EXPECT_EQ(parse(kBlkTDiscard, std::vector<BlkDwzSegment>(5, {0, 1, 0})),
            BlkError::kTooManySegments);
  WriteHeader(kBlkTDiscard, 0);
  EXPECT_EQ(Parse({{kHeader, 16, false}, {kData, 15, false}, {kStatus, 1, true}}).error,
            BlkError::kBadLength);
  EXPECT_EQ(Parse({{kHeader, 16, false}, {kStatus, 1, true}}).error, BlkError::kBadLength);
  limits_.discard = false;
  EXPECT_EQ(parse(kBlkTDiscard, {{0, 8, 0}}), BlkError::kUnsupported);
}

}  // namespace
}  // namespace vireo::virtio
