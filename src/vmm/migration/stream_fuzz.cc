// Fuzzes what a migration destination parses from the network before trusting it: the HELLO,
// DISKS and ACK payloads, PAGES into a small guest memory, post-copy's POSTCOPY bitmap and
// PAGE_REQUEST (which the source parses) and PAGES as post-copy places them, and DISK_CHUNKs
// into an in-memory disk (a size off the chunk grid, so the short last chunk is reachable). Each
// must be accepted or refused cleanly; an accepted chunk must lie inside its disk.
#include <cstdlib>
#include <cstring>

#include "vmm/migration/stream.h"

namespace {

using vireo::block::Extent;
using vireo::block::IoStatus;

// A disk as a byte vector; writes outside it abort (ApplyDiskChunk must have refused them).
class MemoryImage final : public vireo::block::Image {
 public:
  explicit MemoryImage(uint64_t size) : bytes_(size) {}
  std::string_view format() const override { return "raw"; }
  uint64_t size() const override { return bytes_.size(); }
  bool read_only() const override { return false; }
  IoStatus Read(uint64_t offset, std::span<uint8_t> out) override {
    Check(offset, out.size());
    std::memcpy(out.data(), bytes_.data() + offset, out.size());
    return {};
  }
  IoStatus Write(uint64_t offset, std::span<const uint8_t> data) override {
    Check(offset, data.size());
    std::memcpy(bytes_.data() + offset, data.data(), data.size());
    return {};
  }
  IoStatus WriteZeroes(uint64_t offset, uint64_t length) override {
    Check(offset, length);
    std::memset(bytes_.data() + offset, 0, length);
    return {};
  }
  IoStatus Discard(uint64_t, uint64_t) override { return {}; }
  IoStatus Flush() override { return {}; }
  IoStatus Resize(uint64_t) override { return {}; }
  tl::expected<Extent, vireo::block::IoError> Map(uint64_t, uint64_t max_length) override {
    return Extent{Extent::Kind::kData, max_length};
  }
  uint64_t allocated_bytes() const override { return bytes_.size(); }

 private:
  void Check(uint64_t offset, uint64_t length) const {
    if (offset > bytes_.size() || length > bytes_.size() - offset) std::abort();
  }
  std::vector<uint8_t> bytes_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vireo::migration;
  static MemoryImage disk0(2 * kDiskChunkSize + 4096 + 512);
  static MemoryImage disk1(kDiskChunkSize);
  static vireo::block::Image* const disks[] = {&disk0, &disk1};
  static vireo::GuestMemory memory = *vireo::GuestMemory::Create(
      std::vector<vireo::RamRange>{{0, 4 * kPageSize}, {1ull << 30, 2 * kPageSize}},
      vireo::MemoryOptions{});
  std::span<const uint8_t> input(data, size);
  (void)ApplyPages(input, memory);  // GuestMemory::Write checks every address itself
  (void)DecodeHello(input);
  (void)DecodeDisks(input);
  (void)DecodeAck(input);
  // Post-copy: the missing-page bitmap over this RAM's 6 pages, a destination's page requests,
  // and PAGES walked as the post-copy destination walks them (every page handed over in RAM).
  if (auto bitmap = DecodePostcopy(input, 6);
      bitmap && (bitmap->size() != 1 || (*bitmap)[0] >> 6)) {
    std::abort();
  }
  if (auto pages = DecodePageRequest(input, 6)) {
    for (uint64_t page : *pages) {
      if (page >= 6) std::abort();
    }
  }
  (void)ForEachPage(input, 6, [](uint64_t page, std::span<const uint8_t> data) -> vireo::Status {
    if (page >= 6 || (!data.empty() && data.size() != kPageSize)) std::abort();
    return {};
  });
  if (auto length = ApplyDiskChunk(input, disks); length && *length > kDiskChunkSize) {
    std::abort();
  }
  return 0;
}
