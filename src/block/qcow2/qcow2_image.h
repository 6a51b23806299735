// Qcow2Image: a qcow2 image (versions 2 and 3) as an Image, with backing files, compressed
// clusters, internal snapshots and a consistency check. The format is QEMU's
// docs/interop/qcow2.txt; `qemu-img` is the reference the tests compare against.
//
// Files: format.h (on-disk layout), header.* (header and extensions), refcounts.* (refcount
// table and cluster allocation), l2_cache.* (L2 tables), compression.* (zlib/zstd),
// qcow2_image.cc (open, create, the data path), snapshots.cc, check.cc.
//
// Locking: metadata (L1, L2 cache, refcounts, header) is guarded by meta_. Data I/O to
// already-allocated clusters runs outside it, holding data_ shared; anything that frees a
// cluster holds data_ exclusively, so a cluster is never reused while I/O to it is in flight.
// Crash safety (docs/storage.md): a refcount is written and flushed before any table points
// at its cluster, and a table stops pointing at a cluster before its refcount drops, so an
// interrupted update leaks clusters at worst.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "block/image.h"
#include "block/qcow2/header.h"

namespace vireo::block::qcow2 {

class L2Cache;
class Refcounts;
struct SnapshotEntry;

struct CreateOptions {
  uint64_t size = 0;              // Bytes; rounded up to 512.
  uint32_t cluster_size = 65536;  // A power of two, 512 B to 2 MiB.
  int version = 3;                // 2 (compat=0.10) or 3 (compat=1.1).
  std::string backing_file;       // Empty: none. Stored as given (relative to the image).
  std::string backing_format;     // "raw", "qcow2", or empty (probed on open).
  CompressionType compression = CompressionType::kZlib;  // kZstd needs version 3.
  bool lazy_refcounts = false;                           // Version 3 only.
};

struct OpenOptions {
  bool read_only = false;
  bool lock = true;
  bool open_backing = true;         // false: leave the chain closed (info on a broken chain).
  bool backing_read_write = false;  // `commit` writes into the backing file.
  size_t l2_cache_bytes = 1 << 20;  // Memory for cached L2 tables.
};

struct SnapshotInfo {
  std::string id;
  std::string name;
  uint64_t vm_state_size = 0;
  uint32_t date_sec = 0;
  uint32_t date_nsec = 0;
  uint64_t vm_clock_nsec = 0;
  uint64_t disk_size = 0;  // The disk's size when the snapshot was taken.
};

struct CheckResult {
  uint64_t corruptions = 0;  // References to clusters with too low a refcount, bad offsets, ...
  uint64_t leaks = 0;        // Clusters with a refcount that nothing references.
  uint64_t leaks_fixed = 0;
  uint64_t corruptions_fixed = 0;
  uint64_t allocated_clusters = 0;  // Guest clusters with data in this image.
  uint64_t total_clusters = 0;      // Guest clusters of the disk.
  uint64_t compressed_clusters = 0;
  uint64_t fragmented_clusters = 0;
  uint64_t image_end_offset = 0;
  std::vector<std::string> messages;  // One line per problem, as qemu-img check prints them.
};

class Qcow2Image final : public Image {
 public:
  // Creates (or truncates) path as an empty qcow2 image.
  static Status Create(const std::string& path, const CreateOptions& options);
  // Refuses damaged images and unknown incompatible features with a message naming them.
  static Result<std::unique_ptr<Qcow2Image>> Open(const std::string& path,
                                                  const OpenOptions& options = {});
  ~Qcow2Image() override;

  std::string_view format() const override { return "qcow2"; }
  uint64_t size() const override;
  bool read_only() const override { return read_only_; }
  IoStatus Read(uint64_t offset, std::span<uint8_t> out) override;
  IoStatus Write(uint64_t offset, std::span<const uint8_t> data) override;
  IoStatus WriteZeroes(uint64_t offset, uint64_t length) override;
  IoStatus Discard(uint64_t offset, uint64_t length) override;
  IoStatus Flush() override;
  IoStatus Resize(uint64_t new_size) override;
  tl::expected<Extent, IoError> Map(uint64_t offset, uint64_t max_length) override;
  uint64_t allocated_bytes() const override;

  // Stores one whole, cluster-aligned guest cluster compressed (uncompressed when it does not
  // shrink). For `vireo img convert -c`: the cluster must not be allocated yet.
  IoStatus WriteCompressed(uint64_t offset, std::span<const uint8_t> cluster);

  const Header& header() const { return header_; }
  uint32_t cluster_size() const { return header_.cluster_size(); }
  // The open backing image, or null.
  Image* backing() const { return backing_.get(); }
  const std::string& path() const { return path_; }

  // Internal snapshots (snapshots.cc). name_or_id matches an ID first, then a name.
  Result<std::vector<SnapshotInfo>> ListSnapshots();
  Status CreateSnapshot(const std::string& name);
  Status ApplySnapshot(const std::string& name_or_id);
  Status DeleteSnapshot(const std::string& name_or_id);

  // Walks every table and recomputes every refcount (check.cc). repair_leaks lowers the
  // refcounts of leaked clusters to what is referenced; repair_errors also raises refcounts
  // that are too low and rewrites wrong OFLAG_COPIED flags. Repair needs a writable image.
  Result<CheckResult> Check(bool repair_leaks, bool repair_errors = false);

  // Rewrites the header's backing file name and format (`rebase -u`, `commit`).
  Status SetBackingFile(const std::string& file, const std::string& format);

 private:
  friend class Qcow2Internals;  // Tests reach inside through it.
  enum class Kind : uint8_t { kUnallocated, kZero, kNormal, kCompressed };
  // Consecutive guest bytes from one offset that share a kind (and, for writes, whether they
  // can be written in place), within one L2 table.
  struct Run {
    Kind kind = Kind::kUnallocated;
    bool in_place = false;  // kNormal with OFLAG_COPIED: refcount 1, write where it is.
    uint64_t host = 0;      // kNormal: host offset of the first byte.
    uint64_t length = 0;
  };

  Qcow2Image(std::string path, UniqueFd fd, Header header, bool read_only, uint64_t file_size);

  // The rest need meta_ held.
  Kind KindOf(uint64_t entry) const;
  tl::expected<uint64_t, IoError> L2EntryFor(uint64_t cluster);
  IoStatus ValidateEntry(uint64_t entry, uint64_t cluster) const;
  // Whether a cluster at this host offset would overlap the header, the L1 table, the
  // refcount table or a refcount block (QEMU's metadata overlap check, for the cheap cases).
  bool OverlapsMetadata(uint64_t offset) const;
  // Whether a snapshot of this L1 table would overflow any refcount.
  IoStatus CheckSnapshotFits(const std::vector<uint64_t>& l1);
  // Applies queued refcount decrements once enough have piled up (takes data_ itself).
  IoStatus TrimPendingFrees();
  tl::expected<Run, IoError> LookupRun(uint64_t offset, uint64_t max_length, bool for_write);
  IoStatus ReadCluster(uint64_t entry, uint64_t cluster, std::span<uint8_t> out);
  IoStatus ReadCompressed(uint64_t entry, std::span<uint8_t> out);
  IoStatus ReadBacking(uint64_t offset, std::span<uint8_t> out);
  tl::expected<uint64_t, IoError> WritableL2(uint64_t l1_index);
  IoStatus WriteL1Entry(uint64_t l1_index, uint64_t value);
  IoStatus GrowL1(uint64_t entries);
  tl::expected<uint64_t, IoError> AllocateData(uint64_t clusters);
  IoStatus AllocatingWrite(uint64_t offset, std::span<const uint8_t> data);
  IoStatus ZeroClusters(uint64_t first_cluster, uint64_t count);
  void DeferFree(uint64_t entry);
  IoStatus ApplyPendingFrees();
  IoStatus ReleasePool();
  IoStatus Barrier();
  IoStatus WriteHeader();
  IoStatus SyncAndApplyFrees();
  void NoteFileEnd(uint64_t end) { file_end_ = std::max(file_end_, end); }
  // check.cc: recomputes references; repair sets every refcount to what the walk found.
  Result<CheckResult> CheckLocked(bool repair_leaks, bool repair_all);
  // snapshots.cc helpers.
  IoStatus UpdateSnapshotRefcounts(const std::vector<uint64_t>& l1, int64_t delta);
  IoStatus FixCopiedFlags();
  Result<std::vector<SnapshotEntry>> ReadSnapshots();
  Status WriteSnapshots(const std::vector<SnapshotEntry>& entries);
  Result<std::vector<uint64_t>> ReadL1(uint64_t offset, uint32_t entries);

  std::string path_;
  UniqueFd fd_;
  Header header_;
  bool read_only_;
  uint64_t file_end_;
  std::unique_ptr<Image> backing_;
  std::vector<uint64_t> l1_;  // Host byte order.
  std::unique_ptr<L2Cache> l2_cache_;
  std::unique_ptr<Refcounts> refcounts_;
  // Clusters allocated ahead for data writes (refcount 1, referenced by nothing yet).
  uint64_t pool_next_ = 0;
  uint64_t pool_end_ = 0;
  // Pool clusters from here on were past the end of the file when allocated: they read as
  // zeros, so a partial write into one needs no copy-on-write of zeros.
  uint64_t pool_fresh_from_ = ~0ull;
  // Compressed writes pack into the tail of the last compressed cluster.
  uint64_t compressed_next_ = 0;
  uint64_t compressed_end_ = 0;
  // References dropped since the last sync, as (offset, length): their refcounts go down once
  // the tables no longer pointing at them are durable.
  std::vector<std::pair<uint64_t, uint64_t>> pending_frees_;
  mutable std::shared_mutex data_;
  mutable std::mutex meta_;
};

}  // namespace vireo::block::qcow2
