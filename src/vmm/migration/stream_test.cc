// Proves the migration stream's framing and checks: frames round-trip over a socket, a
// flipped bit, an unknown type, an oversized frame, a foreign preamble and another version are
// refused by name; PAGES land at the right guest addresses and hostile page numbers and kinds
// are refused; the dirty bitmaps turn into page numbers across regions.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "vmm/migration/sender.h"
#include "vmm/migration/stream.h"

namespace vireo::migration {
namespace {

struct SocketPair {
  UniqueFd a, b;
  SocketPair() {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    a.reset(fds[0]);
    b.reset(fds[1]);
  }
};

std::vector<uint8_t> PagesPayload(uint64_t page, uint8_t kind, uint8_t fill) {
  std::vector<uint8_t> out = {1, 0, 0, 0};
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(page >> (8 * i)));
  out.push_back(kind);
  if (kind == 1) out.insert(out.end(), kPageSize, fill);
  return out;
}

TEST(MigrationStream, FramesRoundTripAndCorruptionIsCaught) {
  SocketPair s;
  const std::vector<uint8_t> payload = {1, 2, 3, 4, 5};
  ASSERT_TRUE(SendAll(s.a.get(), EncodeFrame(FrameType::kState, payload)));
  auto frame = ReadFrame(s.b.get());
  ASSERT_TRUE(frame) << frame.error().message;
  EXPECT_EQ(frame->type, FrameType::kState);
  EXPECT_EQ(frame->payload, payload);

  std::vector<uint8_t> bad = EncodeFrame(FrameType::kState, payload);
  bad.back() ^= 1;
  ASSERT_TRUE(SendAll(s.a.get(), bad));
  frame = ReadFrame(s.b.get());
  ASSERT_FALSE(frame);
  EXPECT_NE(frame.error().message.find("CRC-32"), std::string::npos) << frame.error().message;
}

TEST(MigrationStream, UnknownTypeAndOversizeAreRefused) {
  SocketPair s;
  std::vector<uint8_t> frame = EncodeFrame(FrameType::kEnd, {});
  frame[0] = 9;
  ASSERT_TRUE(SendAll(s.a.get(), frame));
  auto got = ReadFrame(s.b.get());
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message.find("unknown frame type 9"), std::string::npos);

  SocketPair t;
  frame = EncodeFrame(FrameType::kEnd, {});
  frame[4] = 1;  // an END with a payload: over its bound of 0
  ASSERT_TRUE(SendAll(t.a.get(), frame));
  got = ReadFrame(t.b.get());
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message.find("END frame of 1 bytes"), std::string::npos);
}

TEST(MigrationStream, PeerClosingIsAnError) {
  SocketPair s;
  s.a.reset();
  auto got = ReadFrame(s.b.get());
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message.find("closed"), std::string::npos);
}

TEST(MigrationStream, PreambleChecksMagicAndVersion) {
  std::vector<uint8_t> p = EncodePreamble();
  EXPECT_TRUE(CheckPreamble(p));
  p[8] = 2;
  auto bad = CheckPreamble(p);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("version 2; this vireo speaks version 1"), std::string::npos);
  p[0] = 'X';
  EXPECT_FALSE(CheckPreamble(p));
}

TEST(MigrationStream, HelloRoundTripsAndRefusesBadLayouts) {
  const std::vector<RamRange> ram = {{0, 1 << 20}, {4ull << 30, 2 << 20}};
  auto decoded = DecodeHello(EncodeHello(ram));
  ASSERT_TRUE(decoded);
  ASSERT_EQ(decoded->size(), 2u);
  EXPECT_EQ((*decoded)[1].base, 4ull << 30);
  EXPECT_FALSE(DecodeHello(EncodeHello(std::vector<RamRange>{{0, 100}})));  // not page-aligned
  EXPECT_FALSE(DecodeHello(EncodeHello(std::vector<RamRange>{})));
  EXPECT_FALSE(DecodeHello(EncodeHello(std::vector<RamRange>{{0, 2ull << 40}})));  // too much
  std::vector<uint8_t> extra = EncodeHello(ram);
  extra.push_back(0);
  EXPECT_FALSE(DecodeHello(extra));
}

TEST(MigrationStream, PagesLandInTheirRegionAndHostilePagesAreRefused) {
  const std::vector<RamRange> ram = {{0, 2 * kPageSize}, {1ull << 30, 2 * kPageSize}};
  auto memory = GuestMemory::Create(ram, MemoryOptions{});
  ASSERT_TRUE(memory);
  ASSERT_TRUE(ApplyPages(PagesPayload(3, 1, 0xab), *memory));  // region 1's second page
  EXPECT_EQ(memory->ReadObj<uint8_t>((1ull << 30) + kPageSize + 17).value_or(1), 0xab);
  ASSERT_TRUE(ApplyPages(PagesPayload(3, 0, 0), *memory));
  EXPECT_EQ(memory->ReadObj<uint8_t>((1ull << 30) + kPageSize + 17).value_or(1), 0);
  EXPECT_FALSE(ApplyPages(PagesPayload(4, 1, 1), *memory));  // beyond RAM
  EXPECT_FALSE(ApplyPages(PagesPayload(0, 7, 1), *memory));  // unknown kind
  std::vector<uint8_t> short_page = PagesPayload(0, 1, 1);
  short_page.pop_back();
  EXPECT_FALSE(ApplyPages(short_page, *memory));
  std::vector<uint8_t> too_many = PagesPayload(0, 0, 0);
  too_many[1] = 2;  // 513 pages
  too_many[0] = 1;
  EXPECT_FALSE(ApplyPages(too_many, *memory));
}

TEST(MigrationStream, DirtyBitmapsBecomePageNumbersAcrossRegions) {
  const std::vector<RamRange> ram = {{0, 64 * kPageSize}, {1ull << 30, 70 * kPageSize}};
  auto memory = GuestMemory::Create(ram, MemoryOptions{});
  ASSERT_TRUE(memory);
  const std::vector<std::vector<uint64_t>> bitmaps = {{1ull | 1ull << 63}, {0b10, 1ull << 5}};
  EXPECT_EQ(DirtyPageList(bitmaps, memory->regions()),
            (std::vector<uint64_t>{0, 63, 65, 64 + 64 + 5}));
}

TEST(MigrationStream, UrisAreTcpHostPort) {
  auto a = ParseUri("tcp:127.0.0.1:4444");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, "4444");
  EXPECT_EQ(ParseUri("tcp:[::1]:5")->host, "::1");
  EXPECT_FALSE(ParseUri("unix:/tmp/x"));
  EXPECT_FALSE(ParseUri("tcp:host"));
  EXPECT_FALSE(ParseUri("tcp:host:99999"));
  EXPECT_FALSE(ParseUri("tcp:host:http"));
}

}  // namespace
}  // namespace vireo::migration
