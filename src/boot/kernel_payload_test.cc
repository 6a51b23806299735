#include "boot/kernel_payload.h"

#include <gtest/gtest.h>

#include "boot/test_images.h"

namespace vireo::boot {
namespace {

using testing::CompressGzip;
using testing::CompressXz;
using testing::CompressZstd;

// More than one output chunk (4 MiB), so growing the output buffer is exercised, and not
// all one byte, so the x86 BCJ filter and the matchers have something to do.
std::vector<uint8_t> Kernelish() {
  std::vector<uint8_t> data = testing::Pattern(5u << 20, 0x33);
  for (size_t i = 0; i < data.size(); i += 4096) data[i] = 0xe8;  // CALL rel32 opcodes
  return data;
}

std::string Error(const Result<std::vector<uint8_t>>& r) { return r ? "" : r.error().message; }

TEST(KernelPayload, DetectsEachFormatTheKernelBuildsWith) {
  EXPECT_EQ(DetectPayloadFormat(CompressGzip(Kernelish())), PayloadFormat::kGzip);
  EXPECT_EQ(DetectPayloadFormat(CompressXz(Kernelish())), PayloadFormat::kXz);
  EXPECT_EQ(DetectPayloadFormat(CompressZstd(Kernelish())), PayloadFormat::kZstd);
  EXPECT_EQ(DetectPayloadFormat(std::vector<uint8_t>{'B', 'Z', 'h', '9'}), PayloadFormat::kBzip2);
  EXPECT_EQ(DetectPayloadFormat(std::vector<uint8_t>{0x5d, 0, 0, 0x80}), PayloadFormat::kLzma);
  EXPECT_EQ(DetectPayloadFormat(std::vector<uint8_t>{0x89, 0x4c, 0x5a, 0x4f}), PayloadFormat::kLzo);
  EXPECT_EQ(DetectPayloadFormat(std::vector<uint8_t>{0x02, 0x21, 0x4c, 0x18}), PayloadFormat::kLz4);
  EXPECT_EQ(DetectPayloadFormat(std::vector<uint8_t>{0x7f, 'E', 'L', 'F'}),
            PayloadFormat::kUnknown);
  EXPECT_TRUE(CanDecompressOnHost(PayloadFormat::kXz));
  EXPECT_FALSE(CanDecompressOnHost(PayloadFormat::kLz4));
}

TEST(KernelPayload, UnpacksGzipXzAndZstdUpToTheAppendedSize) {
  const std::vector<uint8_t> kernel = Kernelish();
  for (auto compress : {CompressGzip, CompressXz, CompressZstd}) {
    std::vector<uint8_t> packed = compress(kernel);
    packed.insert(packed.end(), {0x00, 0x00, 0x50, 0x00});  // the kernel build's size suffix
    auto unpacked = DecompressPayload(packed, 64u << 20);
    ASSERT_TRUE(unpacked) << unpacked.error().message;
    EXPECT_EQ(*unpacked, kernel) << PayloadFormatName(DetectPayloadFormat(packed));
  }
}

TEST(KernelPayload, TruncatedPayloadIsRefusedByFormat) {
  const std::vector<uint8_t> kernel = Kernelish();
  for (auto compress : {CompressGzip, CompressXz, CompressZstd}) {
    std::vector<uint8_t> packed = compress(kernel);
    packed.resize(packed.size() / 2);
    auto unpacked = DecompressPayload(packed, 64u << 20);
    std::string name(PayloadFormatName(DetectPayloadFormat(packed)));
    EXPECT_NE(Error(unpacked).find(name + " kernel payload is truncated"), std::string::npos)
        << name << ": " << Error(unpacked);
  }
}

TEST(KernelPayload, CorruptPayloadIsRefusedByFormat) {
  const std::vector<uint8_t> kernel = Kernelish();
  for (auto compress : {CompressGzip, CompressXz, CompressZstd}) {
    std::vector<uint8_t> packed = compress(kernel);
    // Past each format's header, so detection still works and the decoder meets the damage.
    for (size_t i = 64; i < 128; ++i) packed[i] ^= 0xa5;
    auto unpacked = DecompressPayload(packed, 64u << 20);
    std::string name(PayloadFormatName(DetectPayloadFormat(packed)));
    EXPECT_NE(Error(unpacked).find(name + " kernel payload is corrupt"), std::string::npos)
        << name << ": " << Error(unpacked);
  }
}

TEST(KernelPayload, OutputBeyondTheLimitIsRefused) {
  // 16 MiB of zeros packs into a few KiB: a decompression bomb for a 1 MiB limit.
  const std::vector<uint8_t> zeros(16u << 20, 0);
  for (auto compress : {CompressGzip, CompressXz, CompressZstd}) {
    auto unpacked = DecompressPayload(compress(zeros), 1u << 20);
    EXPECT_NE(Error(unpacked).find("unpacks to more than 1 MiB"), std::string::npos)
        << Error(unpacked);
  }
}

TEST(KernelPayload, FormatsVireoDoesNotUnpackAreNamed) {
  auto unpacked = DecompressPayload(std::vector<uint8_t>{0x02, 0x21, 0x4c, 0x18, 0, 0}, 1u << 20);
  EXPECT_EQ(Error(unpacked), "kernel payload is lz4; Vireo unpacks gzip, xz and zstd payloads");
}

}  // namespace
}  // namespace vireo::boot
