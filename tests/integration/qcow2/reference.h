// The reference disk the qcow2 tests compare against: a plain raw file mapped into memory.
// Every operation applied to the image under test is mirrored here, so afterwards the raw file
// is what the disk must read as, and `qemu-img compare` can judge the qcow2 against it.
#pragma once

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <span>
#include <string>

#include "base/mapping.h"
#include "base/result.h"
#include "base/unique_fd.h"

namespace vireo::qcow2test {

class Reference {
 public:
  // Maps an existing raw file (its initial contents are the disk's initial contents: zeros, or
  // the backing file's bytes).
  static Result<Reference> Open(const std::string& path) {
    Reference ref;
    ref.fd_ = UniqueFd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
    if (!ref.fd_) return Fail("reference '{}': {}", path, strerror(errno));
    struct stat st {};
    if (::fstat(ref.fd_.get(), &st) < 0) return Fail("reference '{}': {}", path, strerror(errno));
    VIREO_TRY_STATUS(ref.Map(static_cast<uint64_t>(st.st_size)));
    return ref;
  }

  uint64_t size() const { return map_.size(); }
  std::span<uint8_t> bytes(uint64_t offset, uint64_t length) const {
    return map_.span().subspan(offset, length);
  }

  // Grows or shrinks the file and maps it again; new space reads as zeros, as on a disk.
  Status Resize(uint64_t new_size) {
    map_.reset();
    if (::ftruncate(fd_.get(), static_cast<off_t>(new_size)) < 0) {
      return Fail("reference: resize to {}: {}", new_size, strerror(errno));
    }
    return Map(new_size);
  }

 private:
  Status Map(uint64_t size) {
    if (size == 0) return Fail("reference: the file is empty");
    void* addr = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd_.get(), 0);
    if (addr == MAP_FAILED) return Fail("reference: mmap: {}", strerror(errno));
    map_ = Mapping(addr, size);
    return {};
  }

  UniqueFd fd_;
  Mapping map_;
};

}  // namespace vireo::qcow2test
