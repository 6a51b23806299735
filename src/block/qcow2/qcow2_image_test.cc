// Unit tests for Qcow2Image through its public interface: what is written reads back, across
// cluster boundaries, reopening, backing files, compression, snapshots and the check.
// (tests/integration/qcow2 compares against qemu-img.)
#include "block/qcow2/qcow2_image.h"

#include <gtest/gtest.h>

#include <random>

#include "block/raw_image.h"
#include "block/testing.h"

namespace vireo::block::qcow2 {
namespace {

using block::testing::TempDir;

std::vector<uint8_t> Pattern(size_t size, uint8_t seed) {
  std::vector<uint8_t> v(size);
  for (size_t i = 0; i < size; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + i / 251);
  return v;
}

std::unique_ptr<Qcow2Image> CreateAndOpen(const std::string& path, CreateOptions options) {
  auto created = Qcow2Image::Create(path, options);
  EXPECT_TRUE(created) << (created ? "" : created.error().message);
  auto image = Qcow2Image::Open(path);
  EXPECT_TRUE(image) << (image ? "" : image.error().message);
  return image ? std::move(*image) : nullptr;
}

std::vector<uint8_t> ReadAll(Image& image, uint64_t offset, size_t size) {
  std::vector<uint8_t> out(size, 0xcc);
  auto status = image.Read(offset, out);
  EXPECT_TRUE(status) << (status ? "" : status.error().message);
  return out;
}

void ExpectClean(Qcow2Image& image) {
  auto result = image.Check(false);
  ASSERT_TRUE(result) << result.error().message;
  EXPECT_EQ(result->corruptions, 0u);
  EXPECT_EQ(result->leaks, 0u);
  for (const auto& m : result->messages) ADD_FAILURE() << m;
}

class Qcow2ClusterSizes : public ::testing::TestWithParam<uint32_t> {};

TEST_P(Qcow2ClusterSizes, WritesReadBackAcrossClustersAndReopen) {
  TempDir dir;
  const std::string path = dir.path() + "/a.qcow2";
  const uint32_t cs = GetParam();
  auto image = CreateAndOpen(path, {.size = 8ull << 20, .cluster_size = cs});
  ASSERT_TRUE(image);
  EXPECT_EQ(ReadAll(*image, 0, 4096), std::vector<uint8_t>(4096, 0));
  auto a = Pattern(3 * cs + 100, 1);
  ASSERT_TRUE(image->Write(cs / 2 + 3, a));
  auto b = Pattern(777, 9);
  ASSERT_TRUE(image->Write((8ull << 20) - 777, b));
  ASSERT_TRUE(image->Write(cs, Pattern(10, 3)));  // In place, inside the first write.
  auto expect = a;
  std::copy_n(Pattern(10, 3).begin(), 10, expect.begin() + (cs - cs / 2 - 3));
  EXPECT_EQ(ReadAll(*image, cs / 2 + 3, a.size()), expect);
  ExpectClean(*image);
  image.reset();
  auto reopened = Qcow2Image::Open(path);
  ASSERT_TRUE(reopened) << reopened.error().message;
  EXPECT_EQ(ReadAll(**reopened, cs / 2 + 3, a.size()), expect);
  EXPECT_EQ(ReadAll(**reopened, (8ull << 20) - 777, 777), b);
  EXPECT_EQ(ReadAll(**reopened, 0, cs / 2 + 3), std::vector<uint8_t>(cs / 2 + 3, 0));
  ExpectClean(**reopened);
}

INSTANTIATE_TEST_SUITE_P(Sizes, Qcow2ClusterSizes,
                         ::testing::Values(512u, 4096u, 65536u, 2u << 20));

TEST(Qcow2Image, SmallClustersGrowTheRefcountTable) {
  TempDir dir;
  const std::string path = dir.path() + "/small.qcow2";
  // 512-byte clusters: one refcount table cluster covers 8 MiB, so 24 MiB needs it to grow.
  auto image = CreateAndOpen(path, {.size = 24ull << 20, .cluster_size = 512});
  ASSERT_TRUE(image);
  std::mt19937_64 rng(5);
  std::vector<std::pair<uint64_t, uint8_t>> writes;
  for (int i = 0; i < 1000; ++i) {
    uint64_t offset = (rng() % ((24ull << 20) / 512)) * 512;
    writes.emplace_back(offset, static_cast<uint8_t>(i));
    ASSERT_TRUE(image->Write(offset, std::vector<uint8_t>(512, static_cast<uint8_t>(i))));
  }
  std::map<uint64_t, uint8_t> last;
  for (auto [o, v] : writes) last[o] = v;
  for (auto [o, v] : last) ASSERT_EQ(ReadAll(*image, o, 512), std::vector<uint8_t>(512, v)) << o;
  ExpectClean(*image);
}

TEST(Qcow2Image, ZeroesAndDiscardsReadBackAsZerosAndFreeClusters) {
  TempDir dir;
  const std::string path = dir.path() + "/z.qcow2";
  auto image = CreateAndOpen(path, {.size = 4ull << 20, .cluster_size = 4096});
  ASSERT_TRUE(image);
  ASSERT_TRUE(image->Write(0, Pattern(1 << 20, 4)));
  ASSERT_TRUE(image->WriteZeroes(1000, 20000));
  ASSERT_TRUE(image->Discard(100000, 300000));
  auto expect = Pattern(1 << 20, 4);
  std::fill_n(expect.begin() + 1000, 20000, 0);
  std::fill_n(expect.begin() + 100000, 300000, 0);
  EXPECT_EQ(ReadAll(*image, 0, 1 << 20), expect);
  ASSERT_TRUE(image->Flush());
  auto extent = image->Map(102400, 4096);
  ASSERT_TRUE(extent);
  EXPECT_NE(extent->kind, Extent::Kind::kData);
  ExpectClean(*image);
}

TEST(Qcow2Image, BackingFileReadsFallThroughAndWritesStayOnTop) {
  TempDir dir;
  const std::string base = dir.path() + "/base.raw";
  ASSERT_TRUE(RawImage::Create(base, 1 << 20));
  {
    auto raw = RawImage::Open(base, false);
    ASSERT_TRUE(raw);
    ASSERT_TRUE((*raw)->Write(0, Pattern(1 << 20, 2)));
  }
  const std::string top = dir.path() + "/top.qcow2";
  auto image = CreateAndOpen(top, {.size = 1 << 20,
                                   .cluster_size = 65536,
                                   .backing_file = "base.raw",
                                   .backing_format = "raw"});
  ASSERT_TRUE(image);
  ASSERT_NE(image->backing(), nullptr);
  EXPECT_EQ(ReadAll(*image, 0, 1 << 20), Pattern(1 << 20, 2));
  ASSERT_TRUE(image->Write(70000, Pattern(100, 8)));  // Copy-on-write of cluster 1.
  auto expect = Pattern(1 << 20, 2);
  std::copy_n(Pattern(100, 8).begin(), 100, expect.begin() + 70000);
  ASSERT_TRUE(image->WriteZeroes(65536 * 4, 65536));  // A zero cluster over the backing data.
  std::fill_n(expect.begin() + 65536 * 4, 65536, 0);
  EXPECT_EQ(ReadAll(*image, 0, 1 << 20), expect);
  auto extent = image->Map(65536 * 8, 65536);
  ASSERT_TRUE(extent);
  EXPECT_EQ(extent->depth, 1u);
  ExpectClean(*image);
  auto raw = RawImage::Open(base, true, false);
  ASSERT_TRUE(raw);
  EXPECT_EQ(ReadAll(**raw, 0, 1 << 20), Pattern(1 << 20, 2));  // The base is untouched.
}

TEST(Qcow2Image, CompressedClustersReadBackForZlibAndZstd) {
  for (auto type : {CompressionType::kZlib, CompressionType::kZstd}) {
    TempDir dir;
    const std::string path = dir.path() + "/c.qcow2";
    auto image = CreateAndOpen(path, {.size = 1 << 20, .cluster_size = 65536, .compression = type});
    ASSERT_TRUE(image);
    std::vector<uint8_t> text(65536);
    for (size_t i = 0; i < text.size(); ++i) text[i] = "compressible "[i % 13];
    const uint64_t before = image->allocated_bytes();
    for (int c = 0; c < 4; ++c) ASSERT_TRUE(image->WriteCompressed(c * 65536ull, text));
    // One L2 table and one shared cluster of compressed data, not four data clusters.
    EXPECT_LE(image->allocated_bytes() - before, 2u * 65536);
    for (int c = 0; c < 4; ++c) EXPECT_EQ(ReadAll(*image, c * 65536ull, 65536), text);
    ExpectClean(*image);
    ASSERT_TRUE(image->Write(65536 + 5, Pattern(10, 1)));  // Copy-on-write out of compression.
    auto expect = text;
    std::copy_n(Pattern(10, 1).begin(), 10, expect.begin() + 5);
    EXPECT_EQ(ReadAll(*image, 65536, 65536), expect);
    EXPECT_EQ(ReadAll(*image, 2 * 65536, 65536), text);
    ExpectClean(*image);
  }
}

TEST(Qcow2Image, SnapshotsKeepTheirContentsAndApplyRestoresThem) {
  TempDir dir;
  const std::string path = dir.path() + "/s.qcow2";
  auto image = CreateAndOpen(path, {.size = 2 << 20, .cluster_size = 4096});
  ASSERT_TRUE(image);
  ASSERT_TRUE(image->Write(0, Pattern(1 << 20, 1)));
  ASSERT_TRUE(image->CreateSnapshot("one"));
  ExpectClean(*image);
  ASSERT_TRUE(image->Write(5000, Pattern(50000, 2)));
  ASSERT_TRUE(image->WriteZeroes(100000, 40960));
  auto changed = ReadAll(*image, 0, 1 << 20);
  ExpectClean(*image);
  ASSERT_TRUE(image->CreateSnapshot("two"));
  EXPECT_FALSE(image->CreateSnapshot("two"));
  auto list = image->ListSnapshots();
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].name, "one");
  EXPECT_EQ((*list)[1].id, "2");
  ASSERT_TRUE(image->ApplySnapshot("one"));
  EXPECT_EQ(ReadAll(*image, 0, 1 << 20), Pattern(1 << 20, 1));
  ExpectClean(*image);
  ASSERT_TRUE(image->ApplySnapshot("2"));
  EXPECT_EQ(ReadAll(*image, 0, 1 << 20), changed);
  ASSERT_TRUE(image->DeleteSnapshot("one"));
  ExpectClean(*image);
  ASSERT_TRUE(image->DeleteSnapshot("two"));
  ExpectClean(*image);
  EXPECT_EQ(ReadAll(*image, 0, 1 << 20), changed);
  EXPECT_FALSE(image->DeleteSnapshot("two"));
}

TEST(Qcow2Image, ResizeGrowsTheL1TableAndNewSpaceReadsZero) {
  TempDir dir;
  const std::string path = dir.path() + "/r.qcow2";
  auto image = CreateAndOpen(path, {.size = 1 << 20, .cluster_size = 512});
  ASSERT_TRUE(image);
  ASSERT_TRUE(image->Write(0, Pattern(1 << 20, 3)));
  ASSERT_TRUE(image->Resize(64 << 20));
  EXPECT_EQ(image->size(), 64u << 20);
  ASSERT_TRUE(image->Write((64 << 20) - 4096, Pattern(4096, 6)));
  EXPECT_EQ(ReadAll(*image, 0, 1 << 20), Pattern(1 << 20, 3));
  EXPECT_EQ(ReadAll(*image, 2 << 20, 4096), std::vector<uint8_t>(4096, 0));
  ExpectClean(*image);
  ASSERT_TRUE(image->Resize(512 << 10));
  ExpectClean(*image);
}

TEST(Qcow2Image, ConcurrentWritersOnSeparateRangesAllLand) {
  TempDir dir;
  const std::string path = dir.path() + "/t.qcow2";
  auto image = CreateAndOpen(path, {.size = 16 << 20, .cluster_size = 4096});
  ASSERT_TRUE(image);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        uint64_t offset = (uint64_t{static_cast<unsigned>(t)} * (4 << 20)) + i * 9000ull;
        EXPECT_TRUE(image->Write(offset, std::vector<uint8_t>(9000, static_cast<uint8_t>(t + i))));
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) {
    for (int i = 0; i < 200; ++i) {
      uint64_t offset = (uint64_t{static_cast<unsigned>(t)} * (4 << 20)) + i * 9000ull;
      ASSERT_EQ(ReadAll(*image, offset, 9000),
                std::vector<uint8_t>(9000, static_cast<uint8_t>(t + i)));
    }
  }
  ExpectClean(*image);
}

}  // namespace
}  // namespace vireo::block::qcow2
