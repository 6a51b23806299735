// Qcow2Image: opening, creating and the bookkeeping shared by the data path (data_path.cc),
// snapshots (snapshots.cc) and the check (check.cc).
#include "block/qcow2/qcow2_image.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "base/log.h"
#include "block/image_file.h"
#include "block/open_image.h"
#include "block/qcow2/format.h"
#include "block/qcow2/l2_cache.h"
#include "block/qcow2/refcounts.h"

namespace vireo::block::qcow2 {
namespace {

constexpr int kMaxBackingChain = 16;
thread_local int open_depth = 0;  // Backing files being opened on this thread.

std::string BackingPath(const std::string& image, const std::string& backing) {
  if (backing.empty() || backing[0] == '/') return backing;
  std::filesystem::path dir = std::filesystem::path(image).parent_path();
  return (dir / backing).string();
}

}  // namespace

Qcow2Image::Qcow2Image(std::string path, UniqueFd fd, Header header, bool read_only,
                       uint64_t file_size)
    : path_(std::move(path)),
      fd_(std::move(fd)),
      header_(std::move(header)),
      read_only_(read_only),
      file_end_(file_size) {}

Qcow2Image::~Qcow2Image() {
  if (read_only_ || !refcounts_) return;
  std::unique_lock data_lock(data_);
  std::lock_guard meta(meta_);
  // A clean close leaves no leaks: unused pool clusters go back, dropped references too.
  auto status = ReleasePool();
  if (status) status = SyncAndApplyFrees();
  if (status) status = Barrier();
  if (!status) Log(LogLevel::kWarn, "closing '{}': {}", path_, status.error().message);
}

uint64_t Qcow2Image::size() const {
  std::lock_guard meta(meta_);
  return header_.size;
}

Status Qcow2Image::Create(const std::string& path, const CreateOptions& options) {
  const uint32_t cs = options.cluster_size;
  if (cs < 512 || cs > (2u << 20) || (cs & (cs - 1)) != 0) {
    return Fail("cluster size {} is invalid: use a power of two from 512 to 2M", cs);
  }
  if (options.version != 2 && options.version != 3) {
    return Fail("qcow2 version {} is invalid: use compat=0.10 (v2) or compat=1.1 (v3)",
                options.version);
  }
  if (options.version == 2 && (options.compression == CompressionType::kZstd)) {
    return Fail("compression_type=zstd needs compat=1.1 (qcow2 v3)");
  }
  if (options.version == 2 && options.lazy_refcounts) {
    return Fail("lazy_refcounts=on needs compat=1.1 (qcow2 v3)");
  }
  Header h;
  h.version = static_cast<uint32_t>(options.version);
  h.cluster_bits = static_cast<uint32_t>(__builtin_ctz(cs));
  h.size = (options.size + 511) / 512 * 512;
  if (h.size > kMaxDiskSize) return Fail("disk size {} bytes is too large", options.size);
  h.l1_size = static_cast<uint32_t>(h.L1EntriesFor(h.size));
  if (uint64_t{h.l1_size} * 8 > kMaxL1Bytes) {
    return Fail(
        "a {}-byte disk needs too large an L1 table with {}-byte clusters; use larger "
        "clusters",
        h.size, cs);
  }
  h.refcount_table_offset = cs;
  h.refcount_table_clusters = 1;
  h.backing_file = options.backing_file;
  h.backing_format = options.backing_format;
  if (options.version == 3) {
    h.compression_type = options.compression;
    if (options.compression == CompressionType::kZstd) {
      h.incompatible_features |= kIncompatCompressionType;
    }
    if (options.lazy_refcounts) h.compatible_features |= kCompatLazyRefcounts;
  }

  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (!fd) return Fail("creating '{}': {}", path, strerror(errno));
  auto write_header = [&]() -> IoStatus {
    auto bytes = SerializeHeader(h);
    if (!bytes) return IoFail(EINVAL, "{}", bytes.error().message);
    if (int err = WriteFully(fd.get(), bytes->data(), bytes->size(), 0)) {
      return IoFail(err, "writing the header: {}", strerror(err));
    }
    return {};
  };
  // Header, refcount table and one refcount block counting clusters 0 to 2; the L1 table is
  // then allocated like any cluster, which grows the refcount structures as needed.
  if (auto status = write_header(); !status) {
    return Fail("creating '{}': {}", path, status.error().message);
  }
  std::vector<uint8_t> cluster(cs, 0);
  StoreBe64(cluster.data(), 2ull * cs);
  if (WriteFully(fd.get(), cluster.data(), cs, cs) != 0) {
    return Fail("creating '{}': {}", path, strerror(errno));
  }
  std::fill(cluster.begin(), cluster.end(), 0);
  for (int i = 0; i < 3; ++i) StoreBe16(&cluster[i * 2], 1);
  if (WriteFully(fd.get(), cluster.data(), cs, 2ull * cs) != 0) {
    return Fail("creating '{}': {}", path, strerror(errno));
  }
  Refcounts refcounts(fd.get(), h, write_header);
  auto status = refcounts.Load();
  if (status && h.l1_size > 0) {
    const uint64_t l1_clusters = (uint64_t{h.l1_size} * 8 + cs - 1) / cs;
    auto l1 = refcounts.Allocate(l1_clusters);
    if (!l1) {
      status = tl::unexpected(l1.error());
    } else {
      std::vector<uint8_t> zeros(l1_clusters * cs, 0);
      if (int err = WriteFully(fd.get(), zeros.data(), zeros.size(), *l1)) {
        status = IoFail(err, "{}", strerror(err));
      }
      h.l1_table_offset = *l1;
    }
  }
  if (status) status = write_header();
  if (status && ::fdatasync(fd.get()) < 0) status = IoFail(errno, "{}", strerror(errno));
  if (!status) return Fail("creating '{}': {}", path, status.error().message);
  return {};
}

Result<std::unique_ptr<Qcow2Image>> Qcow2Image::Open(const std::string& path,
                                                     const OpenOptions& options) {
  if (open_depth >= kMaxBackingChain) {
    return Fail("'{}': the backing chain is deeper than {} images (a loop?)", path,
                kMaxBackingChain);
  }
  ImageFile file = VIREO_TRY(OpenImageFile(path, {options.read_only, false, options.lock}));
  std::vector<uint8_t> first(std::min<uint64_t>(file.size, 2u << 20));
  if (int err = ReadFully(file.fd.get(), first.data(), first.size(), 0)) {
    return Fail("'{}': reading the header: {}", path, strerror(err));
  }
  auto parsed = ParseHeader(first, file.size);
  if (!parsed) return Fail("'{}' is not a usable qcow2 image: {}", path, parsed.error().message);
  Header header = std::move(*parsed);
  if ((header.incompatible_features & kIncompatCorrupt) && !options.read_only) {
    return Fail(
        "'{}' is marked corrupt: open it read-only, or repair it with `qemu-img check -r "
        "all`",
        path);
  }
  std::unique_ptr<Qcow2Image> image(
      new Qcow2Image(path, std::move(file.fd), std::move(header), options.read_only, file.size));
  Header& h = image->header_;
  const int fd = image->fd_.get();

  // L1: every entry is checked now, so a bad table is refused at open.
  std::vector<uint8_t> raw(uint64_t{h.l1_size} * 8);
  if (int err = ReadFully(fd, raw.data(), raw.size(), h.l1_table_offset)) {
    return Fail("'{}': reading the L1 table: {}", path, strerror(err));
  }
  image->l1_.resize(h.l1_size);
  for (uint64_t i = 0; i < h.l1_size; ++i) {
    const uint64_t entry = LoadBe64(&raw[i * 8]);
    const uint64_t offset = entry & kL1OffsetMask;
    if (offset != 0 && ((offset & (h.cluster_size() - 1)) != 0 || offset < h.cluster_size() ||
                        offset + h.cluster_size() > file.size)) {
      return Fail("'{}' is damaged: L1 entry {} points at {:#x}, which is {}", path, i, offset,
                  offset + h.cluster_size() > file.size ? "past the end of the file"
                                                        : "not a valid L2 table offset");
    }
    image->l1_[i] = entry;
  }
  image->l2_cache_ = std::make_unique<L2Cache>(fd, h.cluster_size(), options.l2_cache_bytes);
  Qcow2Image* self = image.get();
  image->refcounts_ = std::make_unique<Refcounts>(fd, h, [self] { return self->WriteHeader(); });
  if (auto status = image->refcounts_->Load(); !status) {
    return Fail("'{}' is damaged: {}", path, status.error().message);
  }

  for (uint64_t i = 0; i < image->l1_.size(); ++i) {
    const uint64_t table = image->l1_[i] & kL1OffsetMask;
    if (table != 0 && image->OverlapsMetadata(table)) {
      return Fail("'{}' is damaged: L1 entry {} points at {:#x}, which overlaps other metadata",
                  path, i, table);
    }
  }

  if (!h.backing_file.empty() && options.open_backing) {
    const std::string backing = BackingPath(path, h.backing_file);
    ImageOpenOptions open;
    open.read_only = !options.backing_read_write;
    open.lock = options.lock;
    if (!h.backing_format.empty()) {
      auto format = ParseImageFormat(h.backing_format);
      if (!format) return Fail("'{}': backing format: {}", path, format.error().message);
      open.format = *format;
    }
    ++open_depth;
    auto opened = OpenImage(backing, open);
    --open_depth;
    if (!opened) {
      return Fail("'{}': opening its backing file '{}': {}", path, backing, opened.error().message);
    }
    image->backing_ = std::move(*opened);
  }

  if (!options.read_only) {
    std::lock_guard meta(image->meta_);
    if (h.dirty()) {
      // Refcounts may be stale (lazy refcounts): rebuild them before anything allocates.
      Log(LogLevel::kInfo, "'{}' was not closed cleanly (dirty bit): rebuilding refcounts", path);
      auto result = image->CheckLocked(true, true);
      if (!result) return Fail("'{}': rebuilding refcounts: {}", path, result.error().message);
      if (result->corruptions > 0) {
        return Fail("'{}' is damaged beyond its refcounts: {}", path,
                    result->messages.empty() ? "see `vireo img check`" : result->messages[0]);
      }
      h.incompatible_features &= ~kIncompatDirty;
      if (auto status = image->WriteHeader(); !status) return Fail("{}", status.error().message);
    }
    if (h.autoclear_features != 0) {
      // Autoclear features describe data we do not keep up to date (bitmaps): drop the claim.
      h.autoclear_features = 0;
      if (auto status = image->WriteHeader(); !status) return Fail("{}", status.error().message);
    }
  }
  return image;
}

IoStatus Qcow2Image::WriteHeader() {
  auto bytes = SerializeHeader(header_);
  if (!bytes) return IoFail(EINVAL, "{}", bytes.error().message);
  if (int err = WriteFully(fd_.get(), bytes->data(), bytes->size(), 0)) {
    return IoFail(err, "writing the header of '{}': {}", path_, strerror(err));
  }
  return {};
}

IoStatus Qcow2Image::Barrier() {
  if (::fdatasync(fd_.get()) < 0) return IoFail(errno, "fdatasync: {}", strerror(errno));
  return {};
}

IoStatus Qcow2Image::WriteL1Entry(uint64_t l1_index, uint64_t value) {
  uint8_t raw[8];
  StoreBe64(raw, value);
  if (int err = WriteFully(fd_.get(), raw, 8, header_.l1_table_offset + l1_index * 8)) {
    return IoFail(err, "writing the L1 table: {}", strerror(err));
  }
  l1_[l1_index] = value;
  return {};
}

tl::expected<uint64_t, IoError> Qcow2Image::AllocateData(uint64_t clusters) {
  const uint64_t cs = cluster_size();
  if (pool_end_ - pool_next_ < clusters * cs) {
    VIREO_TRY_STATUS(ReleasePool());
    const uint64_t ahead = std::clamp<uint64_t>((8ull << 20) / cs, 4, 1024);
    const uint64_t count = std::max(clusters, ahead);
    pool_next_ = VIREO_TRY(refcounts_->Allocate(count));
    pool_end_ = pool_next_ + count * cs;
    struct stat st;
    if (::fstat(fd_.get(), &st) < 0) return IoFail(errno, "fstat: {}", strerror(errno));
    const auto file_size = static_cast<uint64_t>(st.st_size);
    pool_fresh_from_ = std::max(file_size, pool_next_);
    if (pool_end_ > file_size) {
      // Extend the file over the pool at once: its clusters are holes (zeros) until written.
      if (::ftruncate(fd_.get(), static_cast<off_t>(pool_end_)) < 0) {
        return IoFail(errno, "growing '{}': {}", path_, strerror(errno));
      }
      NoteFileEnd(pool_end_);
    }
    // The refcounts are durable before any table points at these clusters.
    VIREO_TRY_STATUS(Barrier());
  }
  uint64_t host = pool_next_;
  pool_next_ += clusters * cs;
  return host;
}

IoStatus Qcow2Image::ReleasePool() {
  if (pool_next_ < pool_end_) {
    VIREO_TRY_STATUS(refcounts_->Update(pool_next_, pool_end_ - pool_next_, -1));
    // When the unused rest is the file's tail, give the file its old length back.
    struct stat st;
    if (::fstat(fd_.get(), &st) == 0 && static_cast<uint64_t>(st.st_size) == pool_end_ &&
        ::ftruncate(fd_.get(), static_cast<off_t>(pool_next_)) == 0) {
      file_end_ = pool_next_;
    }
  }
  pool_next_ = pool_end_ = 0;
  pool_fresh_from_ = ~0ull;
  return {};
}

void Qcow2Image::DeferFree(uint64_t entry) {
  const uint64_t cs = cluster_size();
  switch (KindOf(entry)) {
    case Kind::kCompressed: {
      const CompressedRange range = DecodeCompressed(entry, header_.cluster_bits);
      pending_frees_.emplace_back(range.span_start, range.span_length);
      break;
    }
    case Kind::kNormal:
    case Kind::kZero:
      if (uint64_t host = entry & kL2OffsetMask; host != 0) pending_frees_.emplace_back(host, cs);
      break;
    case Kind::kUnallocated:
      break;
  }
}

IoStatus Qcow2Image::ApplyPendingFrees() {
  for (const auto& [offset, length] : pending_frees_) {
    VIREO_TRY_STATUS(refcounts_->Update(offset, length, -1));
  }
  pending_frees_.clear();
  return {};
}

IoStatus Qcow2Image::SyncAndApplyFrees() {
  if (pending_frees_.empty()) return {};
  // The tables that stopped pointing at these clusters are durable before the refcounts drop.
  VIREO_TRY_STATUS(Barrier());
  return ApplyPendingFrees();
}

Status Qcow2Image::SetBackingFile(const std::string& file, const std::string& format) {
  if (read_only_) return Fail("'{}' is open read-only", path_);
  std::unique_lock data_lock(data_);
  std::lock_guard meta(meta_);
  Header saved = header_;
  header_.backing_file = file;
  header_.backing_format = format;
  if (auto status = WriteHeader(); !status) {
    header_ = saved;
    return Fail("{}", status.error().message);
  }
  if (auto status = Barrier(); !status) return Fail("{}", status.error().message);
  return {};
}

}  // namespace vireo::block::qcow2
