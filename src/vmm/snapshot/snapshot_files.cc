#include "vmm/snapshot/snapshot_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/unique_fd.h"

namespace vireo::snapshot {
namespace {

std::string Join(const std::string& dir, const char* name) { return dir + "/" + name; }

Status WriteAll(int fd, std::span<const uint8_t> data, uint64_t offset, const std::string& path) {
  while (!data.empty()) {
    ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Fail("writing {}: {}", path, std::strerror(n < 0 ? errno : EIO));
    data = data.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

Status ReadAll(int fd, std::span<uint8_t> out, uint64_t offset, const std::string& path) {
  while (!out.empty()) {
    ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Fail("reading {}: {}", path, std::strerror(errno));
    if (n == 0) return Fail("{} is truncated at offset {}", path, offset);
    out = out.subspan(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

bool IsZeroPage(const uint8_t* page) {
  uint64_t acc = 0;
  for (size_t i = 0; i < kPageSize; i += 8) {
    uint64_t word;
    std::memcpy(&word, page + i, 8);
    acc |= word;
  }
  return acc == 0;
}

bool BitSet(const std::vector<uint64_t>& bitmap, uint64_t page) {
  return (bitmap[page / 64] >> (page % 64)) & 1;
}

// Writes the runs of pages `want` selects from one region, at `file_offset` in the file.
template <typename Want>
Result<uint64_t> WriteRuns(int fd, const GuestMemory::Region& region, uint64_t file_offset,
                           const std::string& path, Want want) {
  const uint64_t pages = region.range.size / kPageSize;
  const uint8_t* host = region.host();
  uint64_t written = 0;
  uint64_t page = 0;
  while (page < pages) {
    if (!want(page, host + page * kPageSize)) {
      ++page;
      continue;
    }
    uint64_t end = page + 1;
    // Cap runs at 8 MiB so each write stays a reasonable size.
    while (end < pages && end - page < 2048 && want(end, host + end * kPageSize)) ++end;
    std::span<const uint8_t> run(host + page * kPageSize, (end - page) * kPageSize);
    VIREO_TRY_STATUS(WriteAll(fd, run, file_offset + page * kPageSize, path));
    written += run.size();
    page = end;
  }
  return written;
}

}  // namespace

Result<WriteStats> WriteSnapshot(const std::string& dir, const SnapshotState& state,
                                 const GuestMemory& memory) {
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Fail("cannot create snapshot directory '{}': {}", dir, std::strerror(errno));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Fail("snapshot path '{}' exists and is not a directory", dir);
  }
  if (memory.regions().size() != state.ram.size()) {
    return Fail("guest memory has {} regions, the state describes {}", memory.regions().size(),
                state.ram.size());
  }
  WriteStats stats;
  const std::string memory_path = Join(dir, kMemoryFileName);
  const std::string memory_tmp = memory_path + ".tmp";
  UniqueFd fd(::open(memory_tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) return Fail("cannot create '{}': {}", memory_tmp, std::strerror(errno));
  uint64_t offset = 0;
  for (size_t i = 0; i < memory.regions().size(); ++i) {
    const GuestMemory::Region& region = memory.regions()[i];
    uint64_t n = 0;
    if (state.type == SnapshotType::kFull) {
      // Zero pages stay holes: a fresh guest's RAM is mostly zero.
      n = VIREO_TRY(WriteRuns(fd.get(), region, offset, memory_tmp,
                              [](uint64_t, const uint8_t* page) { return !IsZeroPage(page); }));
    } else {
      const std::vector<uint64_t>& bitmap = state.dirty.at(i);
      n = VIREO_TRY(
          WriteRuns(fd.get(), region, offset, memory_tmp,
                    [&bitmap](uint64_t page, const uint8_t*) { return BitSet(bitmap, page); }));
    }
    stats.memory_bytes_written += n;
    offset += region.range.size;
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(offset)) != 0) {
    return Fail("cannot size '{}': {}", memory_tmp, std::strerror(errno));
  }
  fd.reset();
  if (::rename(memory_tmp.c_str(), memory_path.c_str()) != 0) {
    return Fail("cannot rename '{}': {}", memory_tmp, std::strerror(errno));
  }

  const std::vector<uint8_t> encoded = EncodeStateFile(state);
  const std::string state_path = Join(dir, kStateFileName);
  const std::string state_tmp = state_path + ".tmp";
  UniqueFd sfd(::open(state_tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!sfd) return Fail("cannot create '{}': {}", state_tmp, std::strerror(errno));
  VIREO_TRY_STATUS(WriteAll(sfd.get(), encoded, 0, state_tmp));
  sfd.reset();
  if (::rename(state_tmp.c_str(), state_path.c_str()) != 0) {
    return Fail("cannot rename '{}': {}", state_tmp, std::strerror(errno));
  }
  stats.state_bytes = encoded.size();
  return stats;
}

Result<SnapshotState> ReadStateFile(const std::string& dir) {
  const std::string path = Join(dir, kStateFileName);
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Fail("no snapshot in '{}': cannot open {}: {}", dir, path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Fail("'{}' is not a regular file", path);
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxStateFileSize) {
    return Fail("'{}' is {} bytes, too large for a snapshot state file", path, st.st_size);
  }
  std::vector<uint8_t> data(static_cast<size_t>(st.st_size));
  VIREO_TRY_STATUS(ReadAll(fd.get(), data, 0, path));
  auto state = DecodeStateFile(data);
  if (!state) return Wrap(path, state.error());
  return state;
}

Result<LoadedSnapshot> LoadSnapshot(const std::string& dir) {
  // The chain, newest first.
  std::vector<std::pair<std::string, SnapshotState>> chain;
  std::string at = dir;
  for (;;) {
    if (chain.size() >= kMaxChainDepth) {
      return Fail("snapshot '{}' has more than {} diffs above its full snapshot (or a loop)", dir,
                  kMaxChainDepth);
    }
    SnapshotState state = VIREO_TRY(ReadStateFile(at));
    const bool full = state.type == SnapshotType::kFull;
    std::string parent = state.parent;
    if (!chain.empty()) {
      const SnapshotState& child = chain.back().second;
      if (state.ram.size() != child.ram.size() || state.config.memory != child.config.memory) {
        return Fail("diff snapshot '{}' does not match the RAM layout of its parent '{}'",
                    chain.back().first, at);
      }
      for (size_t i = 0; i < state.ram.size(); ++i) {
        if (state.ram[i].base != child.ram[i].base || state.ram[i].size != child.ram[i].size) {
          return Fail("diff snapshot '{}' does not match the RAM layout of its parent '{}'",
                      chain.back().first, at);
        }
      }
    }
    chain.emplace_back(at, std::move(state));
    if (full) break;
    at = parent;
  }

  LoadedSnapshot loaded;
  loaded.dir = dir;
  loaded.chain_length = chain.size();
  const auto& [base_dir, base] = chain.back();
  const std::string base_memory = Join(base_dir, kMemoryFileName);
  {
    UniqueFd fd(::open(base_memory.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Fail("cannot open memory file '{}': {}", base_memory, std::strerror(errno));
    auto memory = GuestMemory::MapFile(fd.get(), base.ram);
    if (!memory) return Wrap(base_memory, memory.error());
    loaded.memory.emplace(std::move(*memory));
  }
  // Diffs, oldest first: their pages over the base's.
  for (size_t c = chain.size() - 1; c-- > 0;) {
    const auto& [diff_dir, diff] = chain[c];
    const std::string path = Join(diff_dir, kMemoryFileName);
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd) return Fail("cannot open memory file '{}': {}", path, std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 ||
        static_cast<uint64_t>(st.st_size) != MemoryFileSize(diff.ram)) {
      return Fail("memory file '{}' is {} bytes, but the VM has {} bytes of RAM", path, st.st_size,
                  MemoryFileSize(diff.ram));
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < diff.ram.size(); ++i) {
      const RamRange& range = diff.ram[i];
      const uint64_t pages = range.size / kPageSize;
      for (uint64_t page = 0; page < pages; ++page) {
        if (!BitSet(diff.dirty[i], page)) continue;
        uint64_t end = page + 1;
        while (end < pages && BitSet(diff.dirty[i], end)) ++end;
        auto span = loaded.memory->Span(range.base + page * kPageSize, (end - page) * kPageSize);
        if (!span) return Fail("diff '{}' names pages outside guest RAM", diff_dir);
        VIREO_TRY_STATUS(ReadAll(fd.get(), *span, offset + page * kPageSize, path));
        page = end - 1;
      }
      offset += range.size;
    }
  }
  loaded.state = std::move(chain.front().second);
  return loaded;
}

}  // namespace vireo::snapshot
