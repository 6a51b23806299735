// Proves the post-copy destination against a scripted source on a socket pair: a thread reading
// a missing page blocks until the page is placed and gets the source's bytes (one PAGE_REQUEST,
// for that page); a page pre-copy left that was missing is dropped and replaced; a page never
// sent reads as zeros without asking the source; pages sent in the background need no request;
// the completion ACK comes only after the VM's ACK and END.
#include "vmm/migration/postcopy_receiver.h"

#include <gtest/gtest.h>
#include <sys/socket.h>

#include <future>

#include "vmm/migration/stream.h"

namespace vireo::migration {
namespace {

std::vector<uint8_t> Page(uint64_t page, uint8_t fill) {
  std::vector<uint8_t> out = {1, 0, 0, 0};
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(page >> (8 * i)));
  out.push_back(static_cast<uint8_t>(PageKind::kData));
  out.insert(out.end(), kPageSize, fill);
  return out;
}

Ack ReadAck(int fd) {
  auto frame = ReadFrame(fd);
  EXPECT_TRUE(frame) << frame.error().message;
  if (!frame) return {};
  EXPECT_EQ(frame->type, FrameType::kAck);
  return DecodeAck(frame->payload).value_or(Ack{99, "bad"});
}

TEST(PostcopyReceiver, FaultedPagesAreFetchedAndTheRestArriveInTheBackground) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  UniqueFd source(fds[0]), destination(fds[1]);
  // Two regions: pages 0-3 and 4-5.
  auto memory = GuestMemory::Create(
      std::vector<RamRange>{{0, 4 * kPageSize}, {1ull << 30, 2 * kPageSize}}, MemoryOptions{});
  ASSERT_TRUE(memory);
  // Pre-copy sent pages 0 and 1 (page 1 went stale: it is missing); 2-5 were never sent.
  ASSERT_TRUE(memory->Write(0, std::vector<uint8_t>(kPageSize, 0x11)));
  ASSERT_TRUE(memory->Write(kPageSize, std::vector<uint8_t>(kPageSize, 0x99)));
  const std::vector<uint64_t> missing = {1, 4, 5};
  auto bitmap = DecodePostcopy(EncodePostcopy(missing, 6), 6);
  ASSERT_TRUE(bitmap);
  auto receiver = PostcopyReceiver::Start(destination.get(), *memory, *bitmap);
  ASSERT_TRUE(receiver) << receiver.error().message;
  EXPECT_EQ((*receiver)->missing_at_start(), 3u);

  // Page 0 stays; page 2 was never sent, so it is zero, without a request.
  EXPECT_EQ(memory->ReadObj<uint8_t>(100).value_or(0), 0x11);
  EXPECT_EQ(memory->ReadObj<uint8_t>(2 * kPageSize + 5).value_or(1), 0);

  // A reader of page 4 (region 1's first) blocks until the source answers its request.
  auto reader = std::async(std::launch::async,
                           [&] { return memory->ReadObj<uint8_t>((1ull << 30) + 7).value_or(0); });
  auto request = ReadFrame(source.get());
  ASSERT_TRUE(request) << request.error().message;
  ASSERT_EQ(request->type, FrameType::kPageRequest);
  auto pages = DecodePageRequest(request->payload, 6);
  ASSERT_TRUE(pages);
  EXPECT_EQ(*pages, std::vector<uint64_t>{4});
  EXPECT_EQ(reader.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout);
  ASSERT_TRUE(SendAll(source.get(), EncodeFrame(FrameType::kPages, Page(4, 0x44))));
  EXPECT_EQ(reader.get(), 0x44);

  // The VM runs here: ACK(0); the rest comes in the background, then END.
  ASSERT_TRUE((*receiver)->Acknowledge());
  Ack running = ReadAck(source.get());
  EXPECT_EQ(running.status, 0u);
  EXPECT_EQ(running.message, "resumed");
  ASSERT_TRUE(SendAll(source.get(), EncodeFrame(FrameType::kPages, Page(1, 0x22))));
  ASSERT_TRUE(SendAll(source.get(), EncodeFrame(FrameType::kPages, Page(5, 0x55))));
  ASSERT_TRUE(SendAll(source.get(), EncodeFrame(FrameType::kEnd, {})));
  Ack complete = ReadAck(source.get());
  EXPECT_EQ(complete.status, 0u);
  EXPECT_EQ(complete.message, "post-copy complete");
  // The stale copy of page 1 is gone; the pages read as the source sent them.
  EXPECT_EQ(memory->ReadObj<uint8_t>(kPageSize + 9).value_or(0), 0x22);
  EXPECT_EQ(memory->ReadObj<uint8_t>((1ull << 30) + kPageSize).value_or(0), 0x55);
  receiver->reset();
}

TEST(PostcopyReceiver, RefusingBeforeTheAcknowledgementTellsTheSource) {
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
  UniqueFd source(fds[0]), destination(fds[1]);
  auto memory = GuestMemory::Create(std::vector<RamRange>{{0, 2 * kPageSize}}, MemoryOptions{});
  ASSERT_TRUE(memory);
  auto bitmap = DecodePostcopy(EncodePostcopy(std::vector<uint64_t>{1}, 2), 2);
  ASSERT_TRUE(bitmap);
  auto receiver = PostcopyReceiver::Start(destination.get(), *memory, *bitmap);
  ASSERT_TRUE(receiver) << receiver.error().message;
  (*receiver)->Refuse("the VM could not be rebuilt");
  Ack refused = ReadAck(source.get());
  EXPECT_EQ(refused.status, 1u);
  EXPECT_EQ(refused.message, "the VM could not be rebuilt");
  receiver->reset();
}

}  // namespace
}  // namespace vireo::migration
