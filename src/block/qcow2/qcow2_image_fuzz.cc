// Fuzz target: Qcow2Image::Open on arbitrary bytes, then reads and maps a few ranges and lists
// the snapshots. A qcow2 file is user input (rule 8); a damaged one must give an error, never
// a crash, a hang or an unbounded allocation. tests/fuzz/CMakeLists.txt builds it.
//
// The input goes into a memfd opened through /proc/self/fd, so no file is left behind, and
// the backing chain is never opened: a fuzzed header must not make us open host files.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "block/qcow2/qcow2_image.h"

namespace {

using vireo::block::qcow2::OpenOptions;
using vireo::block::qcow2::Qcow2Image;

void Exercise(Qcow2Image& image) {
  const uint64_t size = image.size();
  if (size == 0) return;
  std::vector<uint8_t> buffer(65536);
  // The start, the middle, the end, and an unaligned range straddling a cluster boundary.
  const uint64_t cluster = image.cluster_size();
  const uint64_t starts[] = {0, size / 2, size > buffer.size() ? size - buffer.size() : 0,
                             std::min(size - 1, cluster - 3)};
  for (uint64_t start : starts) {
    const uint64_t length = std::min<uint64_t>(buffer.size(), size - start);
    (void)image.Read(start, std::span(buffer.data(), length));
    (void)image.Map(start, size - start);
  }
  // Map walks a bounded number of extents from the start: each must make progress.
  uint64_t off = 0;
  for (int i = 0; i < 64 && off < size; ++i) {
    auto extent = image.Map(off, size - off);
    if (!extent || extent->length == 0) break;
    off += extent->length;
  }
  (void)image.ListSnapshots();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vireo::UniqueFd fd(memfd_create("qcow2-fuzz", MFD_CLOEXEC));
  if (!fd) return 0;
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd.get(), data + done, size - done);
    if (n <= 0) return 0;
    done += static_cast<size_t>(n);
  }
  OpenOptions options;
  options.read_only = true;
  options.lock = false;
  options.open_backing = false;
  options.l2_cache_bytes = 64 << 10;
  auto image = Qcow2Image::Open("/proc/self/fd/" + std::to_string(fd.get()), options);
  if (image) Exercise(**image);
  return 0;
}
