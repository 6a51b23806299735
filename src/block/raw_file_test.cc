// RawFile I/O, run on both engines: io_uring and the worker-thread fallback.
#include "block/raw_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <future>

#include "base/event_loop.h"
#include "base/log.h"
#include "block/testing.h"

namespace vireo::block {
namespace {

using namespace testing;
using Op = BlockRequest::Op;

class RawFileIo : public ::testing::TestWithParam<EngineKind> {
 public:
  void SetUp() override {
    ASSERT_TRUE(dir_.ok());
    if (GetParam() != EngineKind::kIoUring) return;
    auto probe = RawFile::Open(dir_.SparseFile("probe", 4096), {.engine = EngineKind::kIoUring});
    if (!probe) GTEST_SKIP() << probe.error().message;
  }
  std::unique_ptr<RawFile> Open(const std::string& path, RawOptions options = {}) {
    options.engine = GetParam();
    auto file = RawFile::Open(path, options);
    if (!file) {
      ADD_FAILURE() << file.error().message;
      return nullptr;
    }
    return std::move(*file);
  }

 protected:
  TempDir dir_;
};

TEST_P(RawFileIo, EngineIsTheOneAskedFor) {
  auto file = Open(dir_.SparseFile("disk", 1 << 20));
  ASSERT_TRUE(file);
  EXPECT_STREQ(file->engine_name(),
               GetParam() == EngineKind::kThreads ? "worker threads" : "io_uring");
  EXPECT_EQ(file->size(), 1u << 20);
  EXPECT_EQ(file->max_in_flight(), 128u);
  EXPECT_EQ(file->alignment(), 1u);
}

TEST_P(RawFileIo, WritesAndReadsBackAtManyOffsetsWith32InFlight) {
  constexpr uint64_t kSize = 8 << 20;
  const std::string path = dir_.SparseFile("disk", kSize);
  auto file = Open(path, {.queue_depth = 32});
  ASSERT_TRUE(file);
  Driver driver(*file);
  constexpr int kRequests = 96;  // Three rounds of 32 in flight.
  std::vector<std::vector<uint8_t>> data(kRequests);
  std::vector<uint64_t> offsets(kRequests);
  std::vector<std::array<iovec, 3>> iovs(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    // Sizes not a multiple of 512, offsets spread over the disk, three buffers each.
    data[i] = Pattern(1000 + 777 * static_cast<size_t>(i), i);
    offsets[i] = static_cast<uint64_t>(i) * 80000 + (i % 7);  // Disjoint, unaligned.
    size_t a = data[i].size() / 3, b = data[i].size() / 2;
    iovs[i] = {iovec{data[i].data(), a}, iovec{data[i].data() + a, b - a},
               iovec{data[i].data() + b, data[i].size() - b}};
  }
  for (int round = 0; round < 3; ++round) {
    for (int i = round * 32; i < round * 32 + 32; ++i) {
      ASSERT_GE(driver.Submit(Write(offsets[i], iovs[i])), 0);
    }
    BlockRequest extra = Ranged(Op::kFlush, 0, 0);
    EXPECT_EQ(driver.Submit(extra), -1);  // 32 in flight: the queue is full.
    ASSERT_TRUE(driver.WaitAll());
  }
  for (int i = 0; i < kRequests; ++i)
    EXPECT_EQ(driver.result(i), static_cast<int32_t>(data[i].size()));
  EXPECT_EQ(driver.Run(Ranged(Op::kFlush, 0, 0)), 0);

  const auto on_disk = ReadWholeFile(path);
  ASSERT_EQ(on_disk.size(), kSize);
  std::vector<std::vector<uint8_t>> back(kRequests);
  std::vector<iovec> back_iov(kRequests);
  int64_t first = -1;
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(0, std::memcmp(on_disk.data() + offsets[i], data[i].data(), data[i].size())) << i;
    back[i].assign(data[i].size(), 0xee);
    back_iov[i] = iovec{back[i].data(), back[i].size()};
    if (i % 32 == 0 && i > 0) {
      ASSERT_TRUE(driver.WaitAll());
    }
    int64_t cookie = driver.Submit(Read(offsets[i], {&back_iov[i], 1}));
    ASSERT_GE(cookie, 0);
    if (first < 0) first = cookie;
  }
  ASSERT_TRUE(driver.WaitAll());
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_EQ(driver.result(first + i), static_cast<int32_t>(data[i].size()));
    EXPECT_EQ(back[i], data[i]) << "request " << i;
  }
}

TEST_P(RawFileIo, SubmitBatchAcceptsUpToTheQueueDepth) {
  auto file = Open(dir_.SparseFile("disk", 1 << 20), {.queue_depth = 4});
  ASSERT_TRUE(file);
  int completions = 0;
  file->SetCompletionHandler([&](void*, int32_t result) {
    EXPECT_EQ(result, 0);
    ++completions;
  });
  std::vector<BlockRequest> flushes(6, Ranged(Op::kFlush, 0, 0));
  EXPECT_EQ(file->SubmitBatch(flushes), 4u);  // The rest is the caller's to retry.
  for (int i = 0; i < 1000 && completions < 4; ++i) {
    pollfd pfd{file->completion_fd(), POLLIN, 0};
    ::poll(&pfd, 1, 10);
    file->ProcessCompletions();
  }
  EXPECT_EQ(completions, 4);
  EXPECT_EQ(file->SubmitBatch(std::span(flushes).subspan(4)), 2u);
}

TEST_P(RawFileIo, HandlerMaySubmitTheNextRequest) {
  const std::string path = dir_.SparseFile("disk", 1 << 20);
  auto file = Open(path, {.queue_depth = 1});
  ASSERT_TRUE(file);
  std::vector<uint8_t> block = Pattern(512, 9);
  iovec iov{block.data(), block.size()};
  int done = 0;
  file->SetCompletionHandler([&](void*, int32_t result) {
    EXPECT_EQ(result, 512);
    if (++done < 100) {
      EXPECT_TRUE(file->Submit(Write(static_cast<uint64_t>(done) * 512, {&iov, 1})));
    }
  });
  ASSERT_TRUE(file->Submit(Write(0, {&iov, 1})));
  for (int i = 0; i < 5000 && done < 100; ++i) {
    pollfd pfd{file->completion_fd(), POLLIN, 0};
    ::poll(&pfd, 1, 10);
    file->ProcessCompletions();
  }
  EXPECT_EQ(done, 100);
  auto on_disk = ReadWholeFile(path);
  EXPECT_EQ(0, std::memcmp(on_disk.data() + 99 * 512, block.data(), 512));
}

TEST_P(RawFileIo, ReadPastEndOfFileZeroFillsTheLastSector) {
  const auto contents = Pattern(1000, 3);
  auto file = Open(dir_.File("disk", contents));
  ASSERT_TRUE(file);
  EXPECT_EQ(file->size(), 1000u);  // Exact, not rounded.
  Driver driver(*file);
  std::vector<uint8_t> buffer(1024, 0xee);
  iovec iov{buffer.data(), buffer.size()};
  EXPECT_EQ(driver.Run(Read(0, {&iov, 1})), 1024);
  EXPECT_EQ(0, std::memcmp(buffer.data(), contents.data(), 1000));
  EXPECT_EQ(std::vector<uint8_t>(buffer.begin() + 1000, buffer.end()), std::vector<uint8_t>(24, 0));
  // Entirely past EOF but inside the last sector: all zeros.
  std::fill(buffer.begin(), buffer.end(), 0xee);
  iovec tail{buffer.data(), 24};
  EXPECT_EQ(driver.Run(Read(1000, {&tail, 1})), 24);
  EXPECT_EQ(std::vector<uint8_t>(buffer.begin(), buffer.begin() + 24), std::vector<uint8_t>(24, 0));
  // Past the last sector: refused.
  iovec one{buffer.data(), 1};
  EXPECT_EQ(driver.Run(Read(1024, {&one, 1})), -EINVAL);
  iovec sector{buffer.data(), 512};
  EXPECT_EQ(driver.Run(Read(1000, {&sector, 1})), -EINVAL);
}

TEST_P(RawFileIo, RequestsPastTheEndFailWithoutPartialWrites) {
  const auto contents = Pattern(4096, 4);
  const std::string path = dir_.File("disk", contents);
  auto file = Open(path, {.discard = true});
  ASSERT_TRUE(file);
  Driver driver(*file);
  std::vector<uint8_t> data(1024, 0x55);
  iovec iov{data.data(), data.size()};
  EXPECT_EQ(driver.Run(Write(4096 - 512, {&iov, 1})), -EINVAL);
  EXPECT_EQ(driver.Run(Write(UINT64_MAX - 100, {&iov, 1})), -EINVAL);
  EXPECT_EQ(driver.Run(Ranged(Op::kDiscard, 4096, 512)), -EINVAL);
  EXPECT_EQ(driver.Run(Ranged(Op::kWriteZeroes, 1024, UINT64_MAX)), -EINVAL);
  EXPECT_EQ(ReadWholeFile(path), contents);  // Same bytes, same size.
  // Up to the end exactly is fine.
  EXPECT_EQ(driver.Run(Write(4096 - 1024, {&iov, 1})), 1024);
}

TEST_P(RawFileIo, BadRequestsCompleteWithErrors) {
  auto file = Open(dir_.SparseFile("disk", 1 << 20));
  ASSERT_TRUE(file);
  Driver driver(*file);
  std::vector<uint8_t> byte(1);
  std::vector<iovec> many(BlockBackend::kMaxSegments + 1, iovec{byte.data(), 1});
  EXPECT_EQ(driver.Run(Read(0, many)), -EINVAL);
  EXPECT_EQ(driver.Run(Read(0, {})), 0);                             // Empty: nothing to do.
  EXPECT_EQ(driver.Run(Ranged(Op::kDiscard, 0, 512)), -EOPNOTSUPP);  // Opened without discard.
  EXPECT_FALSE(file->supports_discard());
  EXPECT_EQ(driver.Run(Ranged(static_cast<Op>(42), 0, 0)), -EOPNOTSUPP);
}

TEST_P(RawFileIo, DiscardReadsAsZerosAndFreesBlocks) {
  constexpr size_t kSize = 4 << 20;
  const std::string path = dir_.File("disk", Pattern(kSize, 5));
  auto file = Open(path, {.discard = true});
  ASSERT_TRUE(file);
  EXPECT_TRUE(file->supports_discard());
  Driver driver(*file);
  ASSERT_EQ(driver.Run(Ranged(Op::kFlush, 0, 0)), 0);
  struct stat before, after;
  ASSERT_EQ(::stat(path.c_str(), &before), 0);
  EXPECT_EQ(driver.Run(Ranged(Op::kDiscard, 1 << 20, 2 << 20)), 0);
  ASSERT_EQ(::stat(path.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, static_cast<off_t>(kSize));
  // ext4, xfs and tmpfs free the range; st_blocks counts 512-byte units.
  EXPECT_LE(after.st_blocks, before.st_blocks - (2 << 20) / 512);
  auto on_disk = ReadWholeFile(path);
  EXPECT_EQ(std::vector<uint8_t>(on_disk.begin() + (1 << 20), on_disk.begin() + (3 << 20)),
            std::vector<uint8_t>(2 << 20, 0));
  const auto pattern = Pattern(kSize, 5);
  EXPECT_EQ(0, std::memcmp(on_disk.data(), pattern.data(), 1 << 20));
  EXPECT_EQ(0, std::memcmp(on_disk.data() + (3 << 20), pattern.data() + (3 << 20), 1 << 20));
}

// Write-zeroes on this engine, in a directory of the test's choice.
void CheckWriteZeroes(RawFileIo& test, const std::string& path, RawOptions options) {
  constexpr size_t kSize = 1 << 20;
  const auto pattern = Pattern(kSize, 6);
  auto file = test.Open(path, options);
  ASSERT_TRUE(file);
  EXPECT_TRUE(file->supports_write_zeroes());
  Driver driver(*file);
  // Unaligned ends, and long enough to take several 64 KiB zero buffers when writing.
  EXPECT_EQ(driver.Run(Ranged(Op::kWriteZeroes, 1000, 300000)), 0);
  EXPECT_EQ(driver.Run(Ranged(Op::kWriteZeroes, 500000, 0)), 0);
  auto on_disk = ReadWholeFile(path);
  ASSERT_EQ(on_disk.size(), kSize);
  for (size_t i = 0; i < kSize; ++i) {
    uint8_t want = (i >= 1000 && i < 301000) ? 0 : pattern[i];
    ASSERT_EQ(on_disk[i], want) << "byte " << i;
  }
}

TEST_P(RawFileIo, WriteZeroes) {
  CheckWriteZeroes(*this, dir_.File("disk", Pattern(1 << 20, 6)), {});
}

TEST_P(RawFileIo, WriteZeroesByWritingBuffers) {
  CheckWriteZeroes(*this, dir_.File("disk", Pattern(1 << 20, 6)),
                   {.write_zeroes_by_writing = true});
}

TEST_P(RawFileIo, WriteZeroesOnTmpfsFallsBackFromZeroRange) {
  // tmpfs refuses FALLOC_FL_ZERO_RANGE with EOPNOTSUPP; the backend then punches a hole.
  TempDir shm("/dev/shm");
  if (!shm.ok()) GTEST_SKIP() << "/dev/shm (tmpfs) is not writable here";
  SetLogLevel(LogLevel::kInfo);
  ::testing::internal::CaptureStderr();
  CheckWriteZeroes(*this, shm.File("disk", Pattern(1 << 20, 6)), {});
  std::string log = ::testing::internal::GetCapturedStderr();
  SetLogLevel(LogLevel::kWarn);
  EXPECT_NE(log.find("refused FALLOC_FL_ZERO_RANGE"), std::string::npos) << log;
}

TEST_P(RawFileIo, WriteZeroesByWritingSpansSeveralWrites) {
  // More than kMaxSegments x 64 KiB, so one writev cannot cover it.
  constexpr size_t kSize = 20 << 20;
  const std::string path = dir_.File("disk", Pattern(kSize, 10));
  auto file = Open(path, {.write_zeroes_by_writing = true});
  ASSERT_TRUE(file);
  Driver driver(*file);
  EXPECT_EQ(driver.Run(Ranged(Op::kWriteZeroes, 512, kSize - 1024)), 0);
  auto on_disk = ReadWholeFile(path);
  const auto pattern = Pattern(kSize, 10);
  EXPECT_EQ(0, std::memcmp(on_disk.data(), pattern.data(), 512));
  EXPECT_EQ(0, std::memcmp(on_disk.data() + kSize - 512, pattern.data() + kSize - 512, 512));
  EXPECT_TRUE(
      std::all_of(on_disk.begin() + 512, on_disk.end() - 512, [](uint8_t b) { return b == 0; }));
}

TEST_P(RawFileIo, CompletesOnTheEventLoopThread) {
  const std::string path = dir_.SparseFile("disk", 1 << 20);
  auto file = Open(path);
  ASSERT_TRUE(file);
  auto loop = EventLoop::Create("blk-test");
  ASSERT_TRUE(loop);
  std::promise<int32_t> done;
  file->SetCompletionHandler([&](void*, int32_t result) {
    EXPECT_TRUE((*loop)->InLoopThread());
    done.set_value(result);
  });
  ASSERT_TRUE(
      (*loop)->Add(file->completion_fd(), EPOLLIN, [&](uint32_t) { file->ProcessCompletions(); }));
  ASSERT_TRUE((*loop)->Start());
  std::vector<uint8_t> data = Pattern(4096, 7);
  iovec iov{data.data(), data.size()};
  ASSERT_TRUE((*loop)->Post([&] { EXPECT_TRUE(file->Submit(Write(8192, {&iov, 1}))); }));
  auto result = done.get_future();
  ASSERT_EQ(result.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  EXPECT_EQ(result.get(), 4096);
  ASSERT_TRUE((*loop)->Remove(file->completion_fd()));
  (*loop)->Stop();
}

TEST_P(RawFileIo, ClosingWithRequestsInFlightWaitsForThem) {
  auto file = Open(dir_.File("disk", Pattern(1 << 20, 8)));
  ASSERT_TRUE(file);
  std::vector<std::vector<uint8_t>> buffers(64, std::vector<uint8_t>(16384));
  std::vector<iovec> iovs;
  iovs.reserve(buffers.size());
  for (auto& b : buffers) iovs.push_back({b.data(), b.size()});
  file->SetCompletionHandler([](void*, int32_t) { ADD_FAILURE() << "handler after close"; });
  for (size_t i = 0; i < iovs.size(); ++i) {
    ASSERT_TRUE(file->Submit(Write(i * 16384, {&iovs[i], 1})));
  }
  file.reset();  // Must not return while the kernel or a worker still uses the buffers.
}

INSTANTIATE_TEST_SUITE_P(Engines, RawFileIo,
                         ::testing::Values(EngineKind::kIoUring, EngineKind::kThreads),
                         [](const auto& info) {
                           return info.param == EngineKind::kThreads ? std::string("Threads")
                                                                     : std::string("IoUring");
                         });

}  // namespace
}  // namespace vireo::block
