// Opening images by path: probing, a user's format=raw honoured, and the asynchronous
// ImageBackend over a qcow2 image with many requests in flight.
#include "block/open_image.h"

#include <gtest/gtest.h>

#include "block/image_backend.h"
#include "block/qcow2/qcow2_image.h"
#include "block/testing.h"

namespace vireo::block {
namespace {

using testing::Driver;
using testing::TempDir;

TEST(OpenImage, ProbesQcow2ByMagicAndRawOtherwise) {
  TempDir dir;
  const std::string q = dir.path() + "/a.qcow2";
  ASSERT_TRUE(qcow2::Qcow2Image::Create(q, {.size = 1 << 20}));
  EXPECT_EQ(*ProbeImageFormat(q), ImageFormat::kQcow2);
  EXPECT_EQ(*ProbeImageFormat(dir.SparseFile("b.raw", 4096)), ImageFormat::kRaw);
  auto image = OpenImage(q);
  ASSERT_TRUE(image) << image.error().message;
  EXPECT_EQ((*image)->format(), "qcow2");
  EXPECT_EQ((*image)->size(), 1u << 20);
}

TEST(OpenImage, FormatRawIsNeverReadAsQcow2) {
  TempDir dir;
  const std::string q = dir.path() + "/a.qcow2";
  ASSERT_TRUE(qcow2::Qcow2Image::Create(q, {.size = 1 << 30}));
  ImageOpenOptions options;
  options.format = ImageFormat::kRaw;
  auto backend = OpenDiskBackend(q, options);
  ASSERT_TRUE(backend) << backend.error().message;
  // The disk is the file's own bytes (a few clusters), not the 1 GiB the header claims.
  EXPECT_LT((*backend)->size(), 1u << 20);
}

TEST(OpenImage, UnknownFormatNamesTheChoices) {
  auto format = ParseImageFormat("vmdk");
  ASSERT_FALSE(format);
  EXPECT_NE(format.error().message.find("raw or qcow2"), std::string::npos);
}

TEST(ImageBackend, ManyRequestsInFlightOnQcow2) {
  TempDir dir;
  const std::string q = dir.path() + "/a.qcow2";
  ASSERT_TRUE(qcow2::Qcow2Image::Create(q, {.size = 4 << 20, .cluster_size = 4096}));
  auto backend = OpenDiskBackend(q);
  ASSERT_TRUE(backend) << backend.error().message;
  Driver driver(**backend);
  constexpr int kRequests = 64;
  std::vector<std::vector<uint8_t>> buffers;
  std::vector<iovec> iovs(kRequests);
  for (int i = 0; i < kRequests; ++i) buffers.emplace_back(6000, static_cast<uint8_t>(i + 1));
  for (int i = 0; i < kRequests; ++i) {
    iovs[i] = {buffers[i].data(), buffers[i].size()};
    ASSERT_GE(driver.Submit(testing::Write(i * 6144ull, std::span(&iovs[i], 1))), 0);
  }
  ASSERT_TRUE(driver.WaitAll());
  for (int i = 0; i < kRequests; ++i) EXPECT_EQ(driver.result(i), 6000);
  std::vector<uint8_t> back(6000);
  iovec read_iov{back.data(), back.size()};
  for (int i = 0; i < kRequests; i += 7) {
    ASSERT_EQ(driver.Run(testing::Read(i * 6144ull, std::span(&read_iov, 1))), 6000);
    EXPECT_EQ(back, buffers[i]);
  }
  EXPECT_EQ(driver.Run(testing::Ranged(BlockRequest::Op::kFlush, 0, 0)), 0);
  EXPECT_EQ(driver.Run(testing::Ranged(BlockRequest::Op::kWriteZeroes, 4 << 20, 512)), -EINVAL);
}

}  // namespace
}  // namespace vireo::block
