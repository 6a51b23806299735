#include "block/image_file.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "base/log.h"

namespace vireo::block {
namespace {

// Turns open()'s errno into a message that says what to do.
Error OpenError(const std::string& path, bool read_only, int err) {
  const char* access = read_only ? "reading" : "reading and writing";
  switch (err) {
    case ENOENT:
      return Error{fmt::format(
          "disk image '{}' does not exist: check the path, or create an empty image with "
          "`truncate -s 1G {}` or `vireo img create`",
          path, path)};
    case EACCES:
    case EPERM:
      return Error{
          fmt::format("no permission to open disk image '{}' for {}: fix its permissions or owner "
                      "(chmod u+rw), or open it read-only",
                      path, access)};
    case EISDIR:
      return Error{fmt::format("'{}' is a directory: give the path of a disk image file", path)};
    case EROFS:
      return Error{
          fmt::format("disk image '{}' is on a read-only filesystem: open it read-only", path)};
    default:
      return Error{fmt::format("opening disk image '{}' for {}: {}", path, access, strerror(err))};
  }
}

}  // namespace

Result<ImageFile> OpenImageFile(const std::string& path, const ImageFileOptions& options) {
  int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
  UniqueFd fd(::open(path.c_str(), flags | (options.direct ? O_DIRECT : 0)));
  if (!fd) {
    int err = errno;
    if (err == EINVAL && options.direct && UniqueFd(::open(path.c_str(), flags))) {
      return Fail(
          "disk image '{}': its filesystem does not support O_DIRECT (cache=none); use "
          "cache=writeback, or move the image to a filesystem that does (ext4, xfs)",
          path);
    }
    return tl::unexpected(OpenError(path, options.read_only, err));
  }

  struct stat st;
  if (::fstat(fd.get(), &st) < 0) return Fail("disk image '{}': fstat: {}", path, strerror(errno));
  ImageFile file;
  if (S_ISDIR(st.st_mode)) {
    return tl::unexpected(OpenError(path, options.read_only, EISDIR));
  } else if (S_ISREG(st.st_mode)) {
    file.size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    file.is_block_device = true;
    if (::ioctl(fd.get(), BLKGETSIZE64, &file.size) < 0) {
      return Fail("disk image '{}': reading the block device's size: {}", path, strerror(errno));
    }
  } else {
    return Fail("disk image '{}' is not a regular file or a block device", path);
  }

  if (options.lock) {
    struct flock lock {};
    lock.l_type = options.read_only ? F_RDLCK : F_WRLCK;
    lock.l_whence = SEEK_SET;
    if (::fcntl(fd.get(), F_OFD_SETLK, &lock) < 0) {
      if (errno == EAGAIN || errno == EACCES) {
        return Fail(
            "disk image '{}' is in use: another process holds a {} lock on it; stop the VM "
            "using it, or open both read-only",
            path, options.read_only ? "write" : "read or write");
      }
      Log(LogLevel::kWarn, "disk image '{}': cannot lock it ({}); going on unlocked", path,
          strerror(errno));
    }
  }
  file.fd = std::move(fd);
  return file;
}

int ReadFully(int fd, void* buffer, uint64_t length, uint64_t offset) {
  auto* p = static_cast<uint8_t*>(buffer);
  while (length > 0) {
    ssize_t n = ::pread(fd, p, length, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) {  // End of file: the rest reads as zeros.
      std::memset(p, 0, length);
      return 0;
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    length -= static_cast<uint64_t>(n);
  }
  return 0;
}

int WriteFully(int fd, const void* buffer, uint64_t length, uint64_t offset) {
  const auto* p = static_cast<const uint8_t*>(buffer);
  while (length > 0) {
    ssize_t n = ::pwrite(fd, p, length, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += n;
    offset += static_cast<uint64_t>(n);
    length -= static_cast<uint64_t>(n);
  }
  return 0;
}

}  // namespace vireo::block
