// Proves the migration stream's framing and checks: frames round-trip over a socket, a
// flipped bit, an unknown type, an oversized frame, a foreign preamble and another version are
// refused by name; PAGES land at the right guest addresses and hostile page numbers and kinds
// are refused; the dirty bitmaps turn into page numbers across regions; block migration's DISKS
// round-trip and its DISK_CHUNK records land in an image, malformed ones refused by name;
// post-copy's POSTCOPY bitmap and PAGE_REQUEST round-trip and hostile ones are refused.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include "block/raw_image.h"
#include "block/testing.h"
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
  frame[0] = 10;
  ASSERT_TRUE(SendAll(s.a.get(), frame));
  auto got = ReadFrame(s.b.get());
  ASSERT_FALSE(got);
  EXPECT_NE(got.error().message.find("unknown frame type 10"), std::string::npos);

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
  p[8] = 2;  // before post-copy's frames
  auto bad = CheckPreamble(p);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("version 2; this vireo speaks version 3"), std::string::npos);
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

TEST(MigrationStream, PostcopyListsTheMissingPagesAndRefusesAnotherRam) {
  const std::vector<uint64_t> missing = {0, 5, 63, 64, 69};
  const std::vector<uint8_t> payload = EncodePostcopy(missing, 70);
  EXPECT_EQ(payload.size(), 8u + 9u);  // the page count, then 70 bits
  auto bitmap = DecodePostcopy(payload, 70);
  ASSERT_TRUE(bitmap) << bitmap.error().message;
  ASSERT_EQ(bitmap->size(), 2u);
  EXPECT_EQ((*bitmap)[0], 1ull | 1ull << 5 | 1ull << 63);
  EXPECT_EQ((*bitmap)[1], 1ull | 1ull << 5);

  auto other_ram = DecodePostcopy(payload, 71);
  ASSERT_FALSE(other_ram);
  EXPECT_NE(other_ram.error().message.find("covers 70 pages, the VM has 71"), std::string::npos);
  std::vector<uint8_t> cut = payload;
  cut.pop_back();
  EXPECT_FALSE(DecodePostcopy(cut, 70));
  EXPECT_FALSE(DecodePostcopy(std::vector<uint8_t>(4, 0), 70));
  std::vector<uint8_t> past_end = payload;
  past_end.back() |= 0x80;  // page 71 of 70
  auto beyond = DecodePostcopy(past_end, 70);
  ASSERT_FALSE(beyond);
  EXPECT_NE(beyond.error().message.find("beyond the VM's 70"), std::string::npos);
}

TEST(MigrationStream, PageRequestsRoundTripAndHostileOnesAreRefused) {
  const std::vector<uint64_t> pages = {7, 0, 69};
  auto decoded = DecodePageRequest(EncodePageRequest(pages), 70);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, pages);
  auto beyond = DecodePageRequest(EncodePageRequest(std::vector<uint64_t>{70}), 70);
  ASSERT_FALSE(beyond);
  EXPECT_NE(beyond.error().message.find("page 70 is beyond"), std::string::npos);
  EXPECT_FALSE(DecodePageRequest(EncodePageRequest(std::vector<uint64_t>{}), 70));  // empty
  EXPECT_FALSE(DecodePageRequest(EncodePageRequest(std::vector<uint64_t>(257, 1)), 70));
  std::vector<uint8_t> cut = EncodePageRequest(pages);
  cut.pop_back();
  EXPECT_FALSE(DecodePageRequest(cut, 70));
  // Both frames travel: their types are known and their bounds admit what Vireo sends.
  SocketPair s;
  ASSERT_TRUE(SendAll(s.a.get(), EncodeFrame(FrameType::kPageRequest,
                                             EncodePageRequest(std::vector<uint64_t>(256, 1)))));
  auto frame = ReadFrame(s.b.get());
  ASSERT_TRUE(frame) << frame.error().message;
  EXPECT_EQ(frame->type, FrameType::kPageRequest);
  ASSERT_TRUE(
      SendAll(s.a.get(), EncodeFrame(FrameType::kPostcopy, EncodePostcopy(pages, 1 << 20))));
  frame = ReadFrame(s.b.get());
  ASSERT_TRUE(frame) << frame.error().message;
  EXPECT_EQ(frame->type, FrameType::kPostcopy);
}

TEST(MigrationStream, ForEachPageHandsOverEachPageOrTheFirstError) {
  std::vector<uint8_t> payload = PagesPayload(2, 1, 0x5a);
  std::vector<uint64_t> seen;
  auto count = ForEachPage(payload, 3, [&](uint64_t page, std::span<const uint8_t> data) -> Status {
    seen.push_back(page);
    EXPECT_EQ(data.size(), kPageSize);
    EXPECT_EQ(data[100], 0x5a);
    return {};
  });
  ASSERT_TRUE(count);
  EXPECT_EQ(*count, 1u);
  EXPECT_EQ(seen, std::vector<uint64_t>{2});
  auto zero = ForEachPage(PagesPayload(1, 0, 0), 3, [](uint64_t, std::span<const uint8_t> data) {
    EXPECT_TRUE(data.empty());  // a zero page carries no data
    return Status{};
  });
  EXPECT_TRUE(zero);
  EXPECT_FALSE(ForEachPage(payload, 2, [](uint64_t, std::span<const uint8_t>) {
    ADD_FAILURE() << "a page beyond RAM was handed over";
    return Status{};
  }));
  auto refused = ForEachPage(
      payload, 3, [](uint64_t, std::span<const uint8_t>) -> Status { return Fail("not missing"); });
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "not missing");
}

TEST(MigrationStream, DirtyBitmapsBecomePageNumbersAcrossRegions) {
  const std::vector<RamRange> ram = {{0, 64 * kPageSize}, {1ull << 30, 70 * kPageSize}};
  auto memory = GuestMemory::Create(ram, MemoryOptions{});
  ASSERT_TRUE(memory);
  const std::vector<std::vector<uint64_t>> bitmaps = {{1ull | 1ull << 63}, {0b10, 1ull << 5}};
  EXPECT_EQ(DirtyPageList(bitmaps, memory->regions()),
            (std::vector<uint64_t>{0, 63, 65, 64 + 64 + 5}));
}

TEST(MigrationStream, DisksRoundTripAndRefuseAnotherChunkSize) {
  const std::vector<uint64_t> sizes = {16 << 20, 3 * kDiskChunkSize + 512};
  auto decoded = DecodeDisks(EncodeDisks(sizes));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(*decoded, sizes);
  std::vector<uint8_t> other = EncodeDisks(sizes);
  other[2] = 2;  // a 128 KiB chunk size
  auto bad = DecodeDisks(other);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("chunk size"), std::string::npos) << bad.error().message;
  std::vector<uint64_t> too_many(kMaxDisks + 1, 1 << 20);
  EXPECT_FALSE(DecodeDisks(EncodeDisks(too_many)));
  std::vector<uint8_t> cut = EncodeDisks(sizes);
  cut.pop_back();
  EXPECT_FALSE(DecodeDisks(cut));
}

// A disk of two full chunks and a 512-byte last one: data and zero chunks land where they say;
// a wrong disk index, an offset past the end or off the chunk grid, a length that is not the
// chunk's, an unknown kind and a payload of the wrong size are refused, naming the problem.
TEST(MigrationStream, DiskChunksLandInTheImageAndMalformedOnesAreRefused) {
  block::testing::TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.path() + "/disk.raw";
  const uint64_t size = 2 * kDiskChunkSize + 512;
  ASSERT_TRUE(block::RawImage::Create(path, size));
  auto image = block::RawImage::Open(path, /*read_only=*/false);
  ASSERT_TRUE(image) << image.error().message;
  block::Image* disks[] = {image->get()};

  const std::vector<uint8_t> data(kDiskChunkSize, 0x5a);
  auto applied = ApplyDiskChunk(EncodeDiskChunk(0, kDiskChunkSize, data, 0), disks);
  ASSERT_TRUE(applied) << applied.error().message;
  EXPECT_EQ(*applied, kDiskChunkSize);
  const std::vector<uint8_t> tail(512, 0xc3);
  ASSERT_TRUE(ApplyDiskChunk(EncodeDiskChunk(0, 2 * kDiskChunkSize, tail, 0), disks));
  std::vector<uint8_t> got(size);
  ASSERT_TRUE((*image)->Read(0, got));
  EXPECT_EQ(got[0], 0);
  EXPECT_EQ(got[kDiskChunkSize], 0x5a);
  EXPECT_EQ(got[2 * kDiskChunkSize - 1], 0x5a);
  EXPECT_EQ(got[size - 1], 0xc3);
  // A zero chunk is a header only, and zeros what was there.
  const std::vector<uint8_t> zero = EncodeDiskChunk(0, kDiskChunkSize, {}, kDiskChunkSize);
  EXPECT_EQ(zero.size(), kDiskChunkHeader);
  ASSERT_TRUE(ApplyDiskChunk(zero, disks));
  ASSERT_TRUE((*image)->Read(0, got));
  EXPECT_EQ(got[kDiskChunkSize + 7], 0);

  auto refused = [&](std::vector<uint8_t> payload, const char* phrase) {
    auto r = ApplyDiskChunk(payload, disks);
    ASSERT_FALSE(r) << phrase;
    EXPECT_NE(r.error().message.find(phrase), std::string::npos) << r.error().message;
  };
  refused(EncodeDiskChunk(1, 0, data, 0), "disk 1, but the source announced 1 disks");
  refused(EncodeDiskChunk(0, 3 * kDiskChunkSize, data, 0), "offset");
  refused(EncodeDiskChunk(0, 4096, data, 0), "offset 4096");
  refused(EncodeDiskChunk(0, ~uint64_t{0} - kDiskChunkSize + 1, data, 0), "offset");
  refused(EncodeDiskChunk(0, 2 * kDiskChunkSize, data, 0), "(expected 512)");
  refused(EncodeDiskChunk(0, 0, {}, 4096), "a 4096-byte chunk at offset 0");
  std::vector<uint8_t> kind = EncodeDiskChunk(0, 0, data, 0);
  kind[12] = 7;
  refused(kind, "kind 7");
  std::vector<uint8_t> longer = EncodeDiskChunk(0, 0, data, 0);
  longer.push_back(0);
  refused(longer, "a DISK_CHUNK frame of");
  std::vector<uint8_t> zero_with_data = EncodeDiskChunk(0, 0, data, 0);
  zero_with_data[12] = 0;
  refused(zero_with_data, "a DISK_CHUNK frame of");
  refused(std::vector<uint8_t>(10, 0), "cut short");
  EXPECT_FALSE(ApplyDiskChunk(EncodeDiskChunk(0, 0, data, 0), {}));  // no DISKS: no disks
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
