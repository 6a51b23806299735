// Opening an image file (a regular file or a block device) with the checks every format
// needs: errors that name the fix, the advisory lock against a second writer, the size.
#pragma once

#include <cstdint>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace vireo::block {

struct ImageFile {
  UniqueFd fd;
  uint64_t size = 0;  // The file's length, or the block device's size.
  bool is_block_device = false;
};

struct ImageFileOptions {
  bool read_only = false;
  bool direct = false;  // O_DIRECT
  // F_OFD_SETLK: exclusive when writable, shared when read-only.
  bool lock = true;
};

Result<ImageFile> OpenImageFile(const std::string& path, const ImageFileOptions& options);

// pread/pwrite until every byte is done (or an error); a read past the end of the file
// fills the rest with zeros. Return 0 or a positive errno.
int ReadFully(int fd, void* buffer, uint64_t length, uint64_t offset);
int WriteFully(int fd, const void* buffer, uint64_t length, uint64_t offset);

}  // namespace vireo::block
