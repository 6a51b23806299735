// RawFile: opening (errors that name the fix, locking, engine choice), read-only images and
// O_DIRECT.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <functional>

#include "base/mapping.h"
#include "block/raw_file.h"
#include "block/testing.h"

namespace vireo::block {
namespace {

using namespace testing;
using Op = BlockRequest::Op;

std::string OpenError(const std::string& path, const RawOptions& options = {}) {
  auto file = RawFile::Open(path, options);
  return file ? std::string("(opened)") : file.error().message;
}

TEST(RawFileOpen, MissingFileSaysHowToCreateOne) {
  TempDir dir;
  std::string message = OpenError(dir.path() + "/nope.img");
  EXPECT_NE(message.find("does not exist"), std::string::npos) << message;
  EXPECT_NE(message.find("truncate -s"), std::string::npos) << message;
}

TEST(RawFileOpen, DirectoryIsRefused) {
  TempDir dir;
  for (bool read_only : {false, true}) {
    std::string message = OpenError(dir.path(), {.read_only = read_only});
    EXPECT_NE(message.find("is a directory"), std::string::npos) << message;
  }
}

// Runs fn as user "nobody" in a child process (root ignores file permissions) and returns
// what it printed.
std::string AsNobody(const std::function<std::string()>& fn) {
  int fds[2];
  if (::pipe(fds) != 0) return "pipe failed";
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::string out = (::setgid(65534) == 0 && ::setuid(65534) == 0) ? fn() : "setuid failed";
    if (::write(fds[1], out.data(), out.size()) < 0) _exit(1);
    _exit(0);
  }
  ::close(fds[1]);
  std::string out;
  char buffer[512];
  ssize_t n;
  while ((n = ::read(fds[0], buffer, sizeof(buffer))) > 0) out.append(buffer, n);
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return out;
}

TEST(RawFileOpen, NoPermissionSaysWhatToFix) {
  TempDir dir;
  std::string path = dir.SparseFile("disk", 4096);
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(path.c_str(), 0444), 0);
  auto attempt = [&] {
    std::string message = OpenError(path);
    std::string read_only = OpenError(path, {.read_only = true});
    return message + "|" + read_only;
  };
  std::string result = ::geteuid() == 0 ? AsNobody(attempt) : attempt();
  EXPECT_NE(result.find("no permission"), std::string::npos) << result;
  EXPECT_NE(result.find("or open it read-only"), std::string::npos) << result;
  EXPECT_NE(result.find("|(opened)"), std::string::npos) << result;  // Read-only works.
}

TEST(RawFileOpen, QueueDepthIsChecked) {
  TempDir dir;
  std::string path = dir.SparseFile("disk", 4096);
  EXPECT_NE(OpenError(path, {.queue_depth = 0}).find("queue depth"), std::string::npos);
  EXPECT_NE(OpenError(path, {.queue_depth = 100000}).find("queue depth"), std::string::npos);
}

TEST(RawFileOpen, SecondWriterIsLockedOut) {
  TempDir dir;
  std::string path = dir.SparseFile("disk", 4096);
  auto first = RawFile::Open(path);
  ASSERT_TRUE(first) << first.error().message;
  std::string message = OpenError(path);
  EXPECT_NE(message.find("in use"), std::string::npos) << message;
  EXPECT_NE(OpenError(path, {.read_only = true}).find("in use"), std::string::npos);
  EXPECT_EQ(OpenError(path, {.lock = false}), "(opened)");
  first->reset();
  // Readers share.
  auto reader = RawFile::Open(path, {.read_only = true});
  ASSERT_TRUE(reader);
  EXPECT_EQ(OpenError(path, {.read_only = true}), "(opened)");
  EXPECT_NE(OpenError(path).find("in use"), std::string::npos);
}

TEST(RawFileOpen, AutoPrefersIoUringAndThreadsCanBeForced) {
  TempDir dir;
  std::string path = dir.SparseFile("disk", 4096);
  auto automatic = RawFile::Open(path, {.lock = false});
  ASSERT_TRUE(automatic);
  auto uring = RawFile::Open(path, {.engine = EngineKind::kIoUring, .lock = false});
  // Where io_uring works, auto picks it; otherwise auto fell back and kIoUring says why.
  if (uring) {
    EXPECT_STREQ((*automatic)->engine_name(), "io_uring");
  } else {
    EXPECT_STREQ((*automatic)->engine_name(), "worker threads");
    EXPECT_NE(uring.error().message.find("io_uring is unavailable"), std::string::npos);
  }
  auto threads = RawFile::Open(path, {.engine = EngineKind::kThreads, .lock = false});
  ASSERT_TRUE(threads);
  EXPECT_STREQ((*threads)->engine_name(), "worker threads");
}

TEST(RawFileReadOnly, RefusesWritesAndLeavesTheFileUnchanged) {
  TempDir dir;
  const auto contents = Pattern(64 * 1024, 11);
  const std::string path = dir.File("disk", contents);
  const uint64_t before = Checksum(ReadWholeFile(path));
  for (EngineKind engine : {EngineKind::kAuto, EngineKind::kThreads}) {
    auto file = RawFile::Open(path, {.read_only = true, .discard = true, .engine = engine});
    ASSERT_TRUE(file) << file.error().message;
    EXPECT_TRUE((*file)->read_only());
    EXPECT_FALSE((*file)->supports_discard());
    EXPECT_FALSE((*file)->supports_write_zeroes());
    Driver driver(**file);
    std::vector<uint8_t> data(4096, 0x77);
    iovec iov{data.data(), data.size()};
    EXPECT_EQ(driver.Run(Write(0, {&iov, 1})), -EROFS);
    EXPECT_EQ(driver.Run(Write(1 << 30, {&iov, 1})), -EROFS);  // Read-only wins over range.
    EXPECT_EQ(driver.Run(Ranged(Op::kDiscard, 0, 4096)), -EROFS);
    EXPECT_EQ(driver.Run(Ranged(Op::kWriteZeroes, 0, 4096)), -EROFS);
    EXPECT_EQ(driver.Run(Ranged(Op::kFlush, 0, 0)), 0);
    EXPECT_EQ(driver.Run(Read(4096, {&iov, 1})), 4096);
    EXPECT_EQ(0, std::memcmp(data.data(), contents.data() + 4096, 4096));
  }
  EXPECT_EQ(Checksum(ReadWholeFile(path)), before);
}

// Finds a directory whose filesystem accepts O_DIRECT: $TMPDIR, /tmp, /var/tmp.
struct DirectDir {
  std::unique_ptr<TempDir> dir;
  std::string refused;  // Why each candidate was not used.
};
DirectDir FindDirectIoDir() {
  DirectDir found;
  std::vector<std::string> bases = {"/tmp", "/var/tmp"};
  if (const char* tmpdir = getenv("TMPDIR")) bases.insert(bases.begin(), tmpdir);
  for (const auto& base : bases) {
    auto dir = std::make_unique<TempDir>(base);
    if (!dir->ok()) continue;
    auto probe = RawFile::Open(dir->SparseFile("probe", 4096), {.cache = CacheMode::kNone});
    if (probe) {
      found.dir = std::move(dir);
      return found;
    }
    found.refused += base + ": " + probe.error().message + "; ";
  }
  return found;
}

TEST(RawFileDirect, AlignedIoBypassesTheCache) {
  DirectDir direct = FindDirectIoDir();
  if (!direct.dir) GTEST_SKIP() << "no directory here accepts O_DIRECT: " << direct.refused;
  constexpr size_t kSize = 1 << 20;
  const std::string path = direct.dir->SparseFile("disk", kSize);
  for (EngineKind engine : {EngineKind::kAuto, EngineKind::kThreads}) {
    auto file = RawFile::Open(path, {.cache = CacheMode::kNone, .engine = engine});
    ASSERT_TRUE(file) << file.error().message;
    const uint32_t align = (*file)->alignment();
    EXPECT_TRUE(align == 512 || align == 4096) << align;
    // O_DIRECT needs aligned buffers: use page-aligned mappings, as guest RAM is.
    Mapping out(::mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                65536);
    Mapping in(::mmap(nullptr, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
               65536);
    ASSERT_NE(out.get(), MAP_FAILED);
    ASSERT_NE(in.get(), MAP_FAILED);
    const auto pattern = Pattern(65536, 12);
    std::memcpy(out.bytes(), pattern.data(), pattern.size());
    Driver driver(**file);
    iovec out_iov[2] = {{out.bytes(), 16384}, {out.bytes() + 16384, 65536 - 16384}};
    EXPECT_EQ(driver.Run(Write(8 * 65536, out_iov)), 65536);
    EXPECT_EQ(driver.Run(Ranged(Op::kFlush, 0, 0)), 0);
    iovec in_iov{in.bytes(), 65536};
    EXPECT_EQ(driver.Run(Read(8 * 65536, {&in_iov, 1})), 65536);
    EXPECT_EQ(0, std::memcmp(in.bytes(), pattern.data(), pattern.size()));
    EXPECT_EQ(driver.Run(Ranged(Op::kWriteZeroes, 8 * 65536, 4096)), 0);
    EXPECT_EQ(driver.Run(Read(8 * 65536, {&in_iov, 1})), 65536);
    EXPECT_TRUE(std::all_of(in.bytes(), in.bytes() + 4096, [](uint8_t b) { return b == 0; }));
  }
}

TEST(RawFileDirect, ReadOfTheLastPartialSectorZeroFills) {
  DirectDir direct = FindDirectIoDir();
  if (!direct.dir) GTEST_SKIP() << "no directory here accepts O_DIRECT: " << direct.refused;
  const auto contents = Pattern(1000, 13);
  auto file = RawFile::Open(direct.dir->File("disk", contents), {.cache = CacheMode::kNone});
  ASSERT_TRUE(file) << file.error().message;
  if ((*file)->alignment() > 512) GTEST_SKIP() << "direct I/O here needs 4 KiB alignment";
  Mapping in(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
             4096);
  ASSERT_NE(in.get(), MAP_FAILED);
  std::memset(in.bytes(), 0xee, 1024);
  Driver driver(**file);
  iovec iov{in.bytes(), 1024};
  EXPECT_EQ(driver.Run(Read(0, {&iov, 1})), 1024);
  EXPECT_EQ(0, std::memcmp(in.bytes(), contents.data(), 1000));
  EXPECT_TRUE(std::all_of(in.bytes() + 1000, in.bytes() + 1024, [](uint8_t b) { return b == 0; }));
}

TEST(RawFileDirect, RefusedFilesystemIsNamed) {
  // tmpfs refused O_DIRECT before Linux 6.6; where it still does, the error must say so.
  TempDir shm("/dev/shm");
  if (!shm.ok()) GTEST_SKIP() << "/dev/shm is not writable here";
  auto file = RawFile::Open(shm.SparseFile("disk", 4096), {.cache = CacheMode::kNone});
  if (file) GTEST_SKIP() << "this kernel's tmpfs accepts O_DIRECT";
  EXPECT_NE(file.error().message.find("does not support O_DIRECT"), std::string::npos)
      << file.error().message;
}

}  // namespace
}  // namespace vireo::block
