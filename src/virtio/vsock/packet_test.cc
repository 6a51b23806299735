#include "virtio/vsock/packet.h"

#include <gtest/gtest.h>

namespace vireo::virtio::vsock {
namespace {

constexpr uint64_t kCid = 3;

Header Good() {
  Header h{};
  h.src_cid = kCid;
  h.dst_cid = kHostCid;
  h.src_port = 1;
  h.dst_port = 2;
  h.type = kTypeStream;
  h.op = static_cast<uint16_t>(Op::kRw);
  h.len = 10;
  return h;
}

TEST(VsockPacket, AcceptsAValidHeader) {
  EXPECT_EQ(CheckTxHeader(Good(), sizeof(Header) + 10, kCid), Verdict::kNone);
}

TEST(VsockPacket, RefusesEachBadField) {
  EXPECT_EQ(CheckTxHeader(Good(), 43, kCid), Verdict::kShortHeader);
  Header h = Good();
  h.dst_cid = 3;
  EXPECT_EQ(CheckTxHeader(h, 100, kCid), Verdict::kWrongCid);
  h = Good();
  h.src_cid = 4;
  EXPECT_EQ(CheckTxHeader(h, 100, kCid), Verdict::kWrongCid);
  EXPECT_EQ(CheckTxHeader(Good(), sizeof(Header) + 9, kCid), Verdict::kBadLength);
  h = Good();
  h.len = kMaxPayload + 1;
  EXPECT_EQ(CheckTxHeader(h, sizeof(Header) + 2 * kMaxPayload, kCid), Verdict::kBadLength);
  h = Good();
  h.type = 2;  // SEQPACKET: not negotiated
  EXPECT_EQ(CheckTxHeader(h, 100, kCid), Verdict::kBadType);
  for (uint16_t op : {0, 8, 0xffff}) {
    h = Good();
    h.op = op;
    EXPECT_EQ(CheckTxHeader(h, 100, kCid), Verdict::kUnknownOp) << op;
  }
}

TEST(VsockPacket, RstOnlyForAddressedNonRstPackets) {
  Header h = Good();
  EXPECT_FALSE(RepliesWithRst(Verdict::kShortHeader, h));
  EXPECT_FALSE(RepliesWithRst(Verdict::kWrongCid, h));
  EXPECT_TRUE(RepliesWithRst(Verdict::kBadLength, h));
  h.op = static_cast<uint16_t>(Op::kRst);
  EXPECT_FALSE(RepliesWithRst(Verdict::kBadLength, h));
}

TEST(VsockPacket, HostHeader) {
  Header h = MakeHostHeader(7, 100, 200, Op::kRst);
  EXPECT_EQ(h.src_cid, kHostCid);
  EXPECT_EQ(h.dst_cid, 7u);
  EXPECT_EQ(h.src_port, 100u);
  EXPECT_EQ(h.dst_port, 200u);
  EXPECT_EQ(h.op, static_cast<uint16_t>(Op::kRst));
  EXPECT_EQ(h.type, kTypeStream);
  EXPECT_EQ(h.len, 0u);
}

}  // namespace
}  // namespace vireo::virtio::vsock
