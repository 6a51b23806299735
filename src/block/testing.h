// Test helpers for block backends: temporary image files and a driver that submits requests
// and waits for their completions on the calling thread.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "block/backend.h"

namespace vireo::block::testing {

// A directory under base (default $TMPDIR or /tmp), removed with everything in it.
class TempDir {
 public:
  explicit TempDir(std::string base = "") {
    if (base.empty()) base = getenv("TMPDIR") != nullptr ? getenv("TMPDIR") : "/tmp";
    std::string tmpl = base + "/vireo-block-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all, ec);
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  // Creates name with the given contents; returns its path.
  std::string File(const std::string& name, const std::vector<uint8_t>& contents) const {
    std::string file = path_ + "/" + name;
    int fd = ::open(file.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
    if (fd >= 0) {
      size_t done = 0;
      while (done < contents.size()) {
        ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      ::close(fd);
    }
    return file;
  }
  std::string SparseFile(const std::string& name, uint64_t size) const {
    std::string file = File(name, {});
    if (::truncate(file.c_str(), static_cast<off_t>(size)) != 0) return "";
    return file;
  }

 private:
  std::string path_;
};

inline std::vector<uint8_t> ReadWholeFile(const std::string& path) {
  std::vector<uint8_t> data;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return data;
  uint8_t buffer[65536];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof(buffer))) > 0) data.insert(data.end(), buffer, buffer + n);
  ::close(fd);
  return data;
}

inline uint64_t Checksum(const std::vector<uint8_t>& data) {
  uint64_t hash = 0xcbf29ce484222325ull;  // FNV-1a
  for (uint8_t b : data) hash = (hash ^ b) * 0x100000001b3ull;
  return hash;
}

// Deterministic, position-dependent bytes, so a misplaced block shows.
inline std::vector<uint8_t> Pattern(size_t size, uint32_t seed) {
  std::vector<uint8_t> data(size);
  uint32_t x = seed * 2654435761u + 1;
  for (auto& b : data) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    b = static_cast<uint8_t>(x);
  }
  return data;
}

// Submits requests with cookies 0, 1, 2, ... and collects their results by cookie.
class Driver {
 public:
  explicit Driver(BlockBackend& backend) : backend_(backend) {
    backend_.SetCompletionHandler([this](void* cookie, int32_t result) {
      results_[reinterpret_cast<uintptr_t>(cookie)] = result;
    });
  }
  // Returns the cookie, or -1 if the backend's queue is full.
  int64_t Submit(BlockRequest request) {
    request.cookie = reinterpret_cast<void*>(next_);  // NOLINT(performance-no-int-to-ptr)
    if (!backend_.Submit(request)) return -1;
    return static_cast<int64_t>(next_++);
  }
  // Waits (up to 10 s) until every submitted request has completed.
  bool WaitAll() {
    for (int i = 0; i < 10000 && results_.size() < next_; ++i) {
      pollfd pfd{backend_.completion_fd(), POLLIN, 0};
      ::poll(&pfd, 1, 1);
      backend_.ProcessCompletions();
    }
    return results_.size() == next_;
  }
  // Submits one request and waits for its result.
  int32_t Run(BlockRequest request) {
    int64_t cookie = Submit(request);
    if (cookie < 0 || !WaitAll()) return INT32_MIN;
    return results_[static_cast<uint64_t>(cookie)];
  }
  int32_t result(int64_t cookie) const { return results_.at(static_cast<uint64_t>(cookie)); }
  size_t completed() const { return results_.size(); }

 private:
  BlockBackend& backend_;
  uint64_t next_ = 0;
  std::map<uint64_t, int32_t> results_;
};

inline BlockRequest Read(uint64_t offset, std::span<const iovec> iov) {
  return {.op = BlockRequest::Op::kRead, .offset = offset, .iov = iov};
}
inline BlockRequest Write(uint64_t offset, std::span<const iovec> iov) {
  return {.op = BlockRequest::Op::kWrite, .offset = offset, .iov = iov};
}
inline BlockRequest Ranged(BlockRequest::Op op, uint64_t offset, uint64_t length) {
  return {.op = op, .offset = offset, .length = length};
}

}  // namespace vireo::block::testing
