#include "vhost_user/memory_table.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>

namespace vireo::vhost_user {
namespace {

UniqueFd Memfd(uint64_t size) {
  UniqueFd fd(::memfd_create("table-test", MFD_CLOEXEC));
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  return fd;
}

TEST(MemoryTable, MapsRegionsAtTheirOffsetsAndTranslates) {
  std::vector<UniqueFd> fds;
  fds.push_back(Memfd(0x20000));
  fds.push_back(Memfd(0x20000));
  // Region 1 starts 0x800 into its file: not page-aligned, as QEMU's offsets need not be.
  const MemoryRegion regions[] = {{0x0, 0x10000, 0x7000000, 0x0},
                                  {0x100000, 0x8000, 0x9000000, 0x10800}};
  // Write through a mapping of our own, read through the table.
  void* view = ::mmap(nullptr, 0x20000, PROT_READ | PROT_WRITE, MAP_SHARED, fds[1].get(), 0);
  ASSERT_NE(view, MAP_FAILED);
  Mapping owner(view, 0x20000);
  static_cast<uint8_t*>(view)[0x10800] = 0xab;
  auto table = MemoryTable::Map(regions, fds);
  ASSERT_TRUE(table) << table.error().message;
  EXPECT_EQ(table->memory().ReadObj<uint8_t>(0x100000), 0xab);
  EXPECT_EQ(table->Translate(0x9000010, 4), 0x100010u);
  EXPECT_EQ(table->Translate(0x7000000, 0x10000), 0x0u);
  EXPECT_FALSE(table->Translate(0x7000000, 0x10001)) << "runs off region 0";
  EXPECT_FALSE(table->Translate(0x8000000, 1)) << "in no region";
  EXPECT_FALSE(table->Translate(UINT64_MAX, 2));
  EXPECT_FALSE(table->memory().Contains(0x108000, 1));
}

TEST(MemoryTable, RefusesBadTables) {
  auto one = [](MemoryRegion region, uint64_t file_size) {
    std::vector<UniqueFd> fds;
    fds.push_back(Memfd(file_size));
    return MemoryTable::Map(std::span(&region, 1), fds);
  };
  EXPECT_FALSE(one({0, 0x2000, 0x1000, 0}, 0x1000)) << "past the end of the file";
  EXPECT_FALSE(one({0, 0x1000, 0x1000, 0x1000}, 0x1000)) << "offset past the end";
  EXPECT_FALSE(one({0, 0, 0x1000, 0}, 0x1000)) << "empty";
  EXPECT_FALSE(one({UINT64_MAX - 0x10, 0x1000, 0x1000, 0}, 0x1000)) << "gpa wraps";
  EXPECT_FALSE(one({0, 0x1000, UINT64_MAX - 0x10, 0}, 0x1000)) << "user address wraps";
  EXPECT_FALSE(one({0, 0x1000, 0x1000, UINT64_MAX - 0x10}, 0x1000)) << "offset wraps";
  EXPECT_TRUE(one({0, 0x1000, 0x1000, 0}, 0x1000));

  std::vector<UniqueFd> fds;
  fds.push_back(Memfd(0x1000));
  fds.push_back(Memfd(0x1000));
  const MemoryRegion same_gpa[] = {{0, 0x1000, 0x1000, 0}, {0x800, 0x1000, 0x10000, 0}};
  EXPECT_FALSE(MemoryTable::Map(same_gpa, fds)) << "guest-physical overlap";
  const MemoryRegion same_user[] = {{0, 0x1000, 0x1000, 0}, {0x10000, 0x1000, 0x1800, 0}};
  EXPECT_FALSE(MemoryTable::Map(same_user, fds)) << "front-end address overlap";
  EXPECT_FALSE(MemoryTable::Map(std::span(same_user, 1), fds)) << "fd count mismatch";
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  std::vector<UniqueFd> pipes;
  pipes.emplace_back(pipe_fds[0]);
  UniqueFd w(pipe_fds[1]);
  EXPECT_FALSE(MemoryTable::Map(std::span(same_user, 1), pipes)) << "not a regular file";
}

}  // namespace
}  // namespace vireo::vhost_user
