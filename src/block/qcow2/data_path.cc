// Qcow2Image's data path: guest reads, writes, zeroing, discards, flushes, resizing and the
// map, all through the L1 -> L2 -> cluster translation.
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>

#include "block/image_file.h"
#include "block/qcow2/compression.h"
#include "block/qcow2/format.h"
#include "block/qcow2/l2_cache.h"
#include "block/qcow2/qcow2_image.h"
#include "block/qcow2/refcounts.h"

namespace vireo::block::qcow2 {
namespace {

constexpr uint64_t kMaxAllocationRun = 32ull << 20;  // Bytes one allocating write covers.

int WritevFully(int fd, std::span<iovec> iov, uint64_t offset) {
  size_t first = 0;
  while (first < iov.size()) {
    ssize_t n =
        ::pwritev(fd, &iov[first], static_cast<int>(std::min<size_t>(iov.size() - first, 1024)),
                  static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    offset += static_cast<uint64_t>(n);
    auto done = static_cast<size_t>(n);
    while (first < iov.size() && done >= iov[first].iov_len) done -= iov[first++].iov_len;
    if (first < iov.size()) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + done;
      iov[first].iov_len -= done;
    }
  }
  return 0;
}

}  // namespace

Qcow2Image::Kind Qcow2Image::KindOf(uint64_t entry) const {
  if (entry & kOflagCompressed) return Kind::kCompressed;
  if (header_.version >= 3 && (entry & kOflagZero)) return Kind::kZero;
  if ((entry & kL2OffsetMask) == 0) return Kind::kUnallocated;
  return Kind::kNormal;
}

bool Qcow2Image::OverlapsMetadata(uint64_t offset) const {
  const uint64_t cs = cluster_size();
  auto overlaps = [&](uint64_t start, uint64_t length) {
    return length > 0 && offset < start + length && start < offset + cs;
  };
  return offset < cs || overlaps(header_.l1_table_offset, uint64_t{header_.l1_size} * 8) ||
         overlaps(header_.refcount_table_offset, uint64_t{header_.refcount_table_clusters} * cs) ||
         refcounts_->IsBlock(offset);
}

tl::expected<uint64_t, IoError> Qcow2Image::L2EntryFor(uint64_t cluster) {
  const uint64_t l1_index = cluster / header_.l2_entries();
  if (l1_index >= l1_.size()) return 0;
  const uint64_t table = l1_[l1_index] & kL1OffsetMask;
  if (table == 0) return 0;
  if (OverlapsMetadata(table)) {
    return IoFail(EIO,
                  "'{}' is damaged: L1 entry {} points at {:#x}, which overlaps other "
                  "metadata",
                  path_, l1_index, table);
  }
  std::vector<uint64_t>* entries = VIREO_TRY(l2_cache_->Get(table));
  const uint64_t entry = (*entries)[cluster % header_.l2_entries()];
  VIREO_TRY_STATUS(ValidateEntry(entry, cluster));
  return entry;
}

IoStatus Qcow2Image::ValidateEntry(uint64_t entry, uint64_t cluster) const {
  const uint64_t cs = cluster_size();
  const uint64_t guest = cluster * cs;
  if (entry & kOflagCompressed) {
    const CompressedRange range = DecodeCompressed(entry, header_.cluster_bits);
    const uint64_t offset = range.offset;
    if (offset < cs || range.span_start + range.span_length > (file_end_ + 511) / 512 * 512) {
      return IoFail(EIO,
                    "'{}' is damaged: compressed cluster for guest offset {:#x} lies at {:#x}, "
                    "outside the file",
                    path_, guest, offset);
    }
    return {};
  }
  const uint64_t host = entry & kL2OffsetMask;
  if (host == 0) return {};
  if ((host & (cs - 1)) != 0 || OverlapsMetadata(host)) {
    return IoFail(EIO,
                  "'{}' is damaged: L2 entry for guest offset {:#x} points at {:#x}, which "
                  "is not a valid cluster",
                  path_, guest, host);
  }
  if (host + cs > file_end_ && !(header_.version >= 3 && (entry & kOflagZero))) {
    // Reading such a cluster would return zeros where data was claimed; refuse instead.
    return IoFail(EIO,
                  "'{}' is damaged: L2 entry for guest offset {:#x} points at {:#x}, past "
                  "the end of the file",
                  path_, guest, host);
  }
  return {};
}

tl::expected<Qcow2Image::Run, IoError> Qcow2Image::LookupRun(uint64_t offset, uint64_t max_length,
                                                             bool for_write) {
  const uint64_t cs = cluster_size();
  uint64_t cluster = offset / cs;
  const uint64_t entry = VIREO_TRY(L2EntryFor(cluster));
  Run run;
  run.kind = KindOf(entry);
  run.in_place = run.kind == Kind::kNormal && (entry & kOflagCopied) != 0;
  run.host = (entry & kL2OffsetMask) + offset % cs;
  run.length = std::min(max_length, cs - offset % cs);
  // Extend over following clusters of the same L2 table that behave the same.
  const uint64_t table_end = (cluster / header_.l2_entries() + 1) * header_.l2_entries();
  const bool compressed = run.kind == Kind::kCompressed;
  uint64_t limit = for_write ? kMaxAllocationRun : ~0ull;
  while (!compressed && run.length < max_length && run.length < limit && ++cluster < table_end) {
    const uint64_t next = VIREO_TRY(L2EntryFor(cluster));
    const Kind kind = KindOf(next);
    const bool in_place = kind == Kind::kNormal && (next & kOflagCopied) != 0;
    if (for_write) {
      if (in_place != run.in_place) break;
      if (in_place && (next & kL2OffsetMask) != run.host - offset % cs + (run.length + offset % cs))
        break;
    } else {
      if (kind != run.kind) break;
      if (kind == Kind::kNormal && (next & kL2OffsetMask) != run.host + run.length) break;
    }
    run.length = std::min(max_length, run.length + cs);
  }
  return run;
}

IoStatus Qcow2Image::ReadBacking(uint64_t offset, std::span<uint8_t> out) {
  uint64_t inside = 0;
  if (backing_ && offset < backing_->size()) {
    inside = std::min<uint64_t>(out.size(), backing_->size() - offset);
    VIREO_TRY_STATUS(backing_->Read(offset, out.first(inside)));
  }
  std::fill(out.begin() + static_cast<ptrdiff_t>(inside), out.end(), 0);
  return {};
}

IoStatus Qcow2Image::ReadCompressed(uint64_t entry, std::span<uint8_t> out) {
  const CompressedRange range = DecodeCompressed(entry, header_.cluster_bits);
  const uint64_t offset = range.offset;
  const uint64_t end = range.span_start + range.span_length;
  std::vector<uint8_t> in(end - offset);
  if (int err = ReadFully(fd_.get(), in.data(), in.size(), offset)) {
    return IoFail(err, "reading a compressed cluster of '{}': {}", path_, strerror(err));
  }
  if (!Decompress(header_.compression_type, in, out)) {
    return IoFail(EIO, "'{}' is damaged: the compressed cluster at {:#x} does not decompress",
                  path_, offset);
  }
  return {};
}

IoStatus Qcow2Image::ReadCluster(uint64_t entry, uint64_t cluster, std::span<uint8_t> out) {
  switch (KindOf(entry)) {
    case Kind::kNormal:
      if (int err = ReadFully(fd_.get(), out.data(), out.size(), entry & kL2OffsetMask)) {
        return IoFail(err, "reading '{}': {}", path_, strerror(err));
      }
      return {};
    case Kind::kCompressed:
      return ReadCompressed(entry, out);
    case Kind::kZero:
      std::fill(out.begin(), out.end(), 0);
      return {};
    case Kind::kUnallocated:
      break;
  }
  return ReadBacking(cluster * cluster_size(), out);
}

IoStatus Qcow2Image::Read(uint64_t offset, std::span<uint8_t> out) {
  std::shared_lock data_lock(data_);
  std::vector<uint8_t> cluster;
  while (!out.empty()) {
    std::unique_lock meta(meta_);
    Run run = VIREO_TRY(LookupRun(offset, out.size(), false));
    std::span<uint8_t> part = out.first(run.length);
    switch (run.kind) {
      case Kind::kNormal:
        meta.unlock();
        if (int err = ReadFully(fd_.get(), part.data(), part.size(), run.host)) {
          return IoFail(err, "reading '{}': {}", path_, strerror(err));
        }
        break;
      case Kind::kZero:
        meta.unlock();
        std::fill(part.begin(), part.end(), 0);
        break;
      case Kind::kUnallocated:
        meta.unlock();
        VIREO_TRY_STATUS(ReadBacking(offset, part));
        break;
      case Kind::kCompressed: {
        const uint64_t entry = VIREO_TRY(L2EntryFor(offset / cluster_size()));
        meta.unlock();
        cluster.resize(cluster_size());
        VIREO_TRY_STATUS(ReadCompressed(entry, cluster));
        std::copy_n(cluster.begin() + static_cast<ptrdiff_t>(offset % cluster_size()), part.size(),
                    part.begin());
        break;
      }
    }
    offset += run.length;
    out = out.subspan(run.length);
  }
  return {};
}

tl::expected<uint64_t, IoError> Qcow2Image::WritableL2(uint64_t l1_index) {
  const uint64_t entry = l1_[l1_index];
  const uint64_t old = entry & kL1OffsetMask;
  if (old != 0 && (entry & kOflagCopied)) return old;
  // A new table, or a private copy of one a snapshot shares.
  std::vector<uint64_t> table(header_.l2_entries(), 0);
  if (old != 0) table = *VIREO_TRY(l2_cache_->Get(old));
  const uint64_t fresh = VIREO_TRY(refcounts_->Allocate(1));
  VIREO_TRY_STATUS(l2_cache_->Put(fresh, std::move(table)));
  NoteFileEnd(fresh + cluster_size());
  // Its refcount and contents are durable before the L1 entry points at it.
  VIREO_TRY_STATUS(Barrier());
  VIREO_TRY_STATUS(WriteL1Entry(l1_index, fresh | kOflagCopied));
  if (old != 0) pending_frees_.emplace_back(old, cluster_size());
  return fresh;
}

IoStatus Qcow2Image::AllocatingWrite(uint64_t offset, std::span<const uint8_t> data) {
  const uint64_t cs = cluster_size();
  const uint64_t first = offset / cs;
  const uint64_t last = (offset + data.size() - 1) / cs;
  const uint64_t count = last - first + 1;
  const uint64_t table = VIREO_TRY(WritableL2(first / header_.l2_entries()));
  std::vector<uint64_t> old(count);
  {
    std::vector<uint64_t>* entries = VIREO_TRY(l2_cache_->Get(table));
    const uint64_t base = first % header_.l2_entries();
    std::copy_n(entries->begin() + static_cast<ptrdiff_t>(base), count, old.begin());
  }
  const uint64_t host = VIREO_TRY(AllocateData(count));

  // Copy-on-write: the parts of the first and last cluster the request does not cover. Where
  // the old cluster read as zeros and the new one is a fresh hole, there is nothing to copy.
  const bool hole = host >= pool_fresh_from_;
  auto reads_zero = [&](uint64_t entry, uint64_t cluster) {
    const Kind kind = KindOf(entry);
    return kind == Kind::kZero ||
           (kind == Kind::kUnallocated && (!backing_ || cluster * cs >= backing_->size()));
  };
  uint64_t head = offset % cs;
  uint64_t tail = (last + 1) * cs - (offset + data.size());
  const uint64_t data_at = host + head;
  if (hole && head > 0 && reads_zero(old[0], first)) head = 0;
  if (hole && tail > 0 && reads_zero(old[count - 1], last)) tail = 0;
  std::vector<uint8_t> head_buf, tail_buf;
  if (head > 0) {
    head_buf.resize(cs);
    VIREO_TRY_STATUS(ReadCluster(old[0], first, head_buf));
    head_buf.resize(head);
  }
  if (tail > 0) {
    tail_buf.resize(cs);
    VIREO_TRY_STATUS(ReadCluster(old[count - 1], last, tail_buf));
    tail_buf.erase(tail_buf.begin(), tail_buf.end() - static_cast<ptrdiff_t>(tail));
  }
  iovec iov[3];
  size_t n = 0;
  if (head > 0) iov[n++] = {head_buf.data(), head};
  iov[n++] = {const_cast<uint8_t*>(data.data()), data.size()};
  if (tail > 0) iov[n++] = {tail_buf.data(), tail};
  if (int err = WritevFully(fd_.get(), std::span(iov, n), data_at - head)) {
    return IoFail(err, "writing '{}': {}", path_, strerror(err));
  }
  NoteFileEnd(host + count * cs);
  // The data is in place before the table points at it.
  std::vector<uint64_t> fresh(count);
  for (uint64_t i = 0; i < count; ++i) fresh[i] = (host + i * cs) | kOflagCopied;
  VIREO_TRY_STATUS(l2_cache_->Set(table, first % header_.l2_entries(), fresh));
  for (uint64_t entry : old) DeferFree(entry);
  return {};
}

IoStatus Qcow2Image::TrimPendingFrees() {
  constexpr size_t kMaxPendingFrees = 4096;
  {
    std::lock_guard meta(meta_);
    if (pending_frees_.size() < kMaxPendingFrees) return {};
  }
  // Without it a guest that never flushes would leak every cluster it frees on a crash.
  std::unique_lock data_lock(data_);
  std::lock_guard meta(meta_);
  return SyncAndApplyFrees();
}

IoStatus Qcow2Image::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (read_only_) return IoFail(EROFS, "'{}' is open read-only", path_);
  VIREO_TRY_STATUS(TrimPendingFrees());
  std::shared_lock data_lock(data_);
  while (!data.empty()) {
    std::unique_lock meta(meta_);
    Run run = VIREO_TRY(LookupRun(offset, data.size(), true));
    if (run.in_place) {
      meta.unlock();
      if (int err = WriteFully(fd_.get(), data.data(), run.length, run.host)) {
        return IoFail(err, "writing '{}': {}", path_, strerror(err));
      }
    } else {
      VIREO_TRY_STATUS(AllocatingWrite(offset, data.first(run.length)));
    }
    offset += run.length;
    data = data.subspan(run.length);
  }
  return {};
}

IoStatus Qcow2Image::ZeroClusters(uint64_t first, uint64_t count) {
  // Without a backing file an unallocated cluster reads as zeros; with one, v3 marks the
  // cluster zero. (v2 with a backing file writes zeros instead: see WriteZeroes.)
  const uint64_t value = backing_ ? kOflagZero : 0;
  const uint64_t per_table = header_.l2_entries();
  while (count > 0) {
    const uint64_t l1_index = first / per_table;
    const uint64_t n = std::min(count, per_table - first % per_table);
    if (l1_index < l1_.size() && ((l1_[l1_index] & kL1OffsetMask) != 0 || value != 0)) {
      const uint64_t table = VIREO_TRY(WritableL2(l1_index));
      std::vector<uint64_t>* entries = VIREO_TRY(l2_cache_->Get(table));
      std::vector<uint64_t> old(entries->begin() + static_cast<ptrdiff_t>(first % per_table),
                                entries->begin() + static_cast<ptrdiff_t>(first % per_table + n));
      std::vector<uint64_t> fresh(n, value);
      VIREO_TRY_STATUS(l2_cache_->Set(table, first % per_table, fresh));
      for (uint64_t entry : old) DeferFree(entry);
    }
    first += n;
    count -= n;
  }
  return {};
}

IoStatus Qcow2Image::WriteZeroes(uint64_t offset, uint64_t length) {
  if (read_only_) return IoFail(EROFS, "'{}' is open read-only", path_);
  VIREO_TRY_STATUS(TrimPendingFrees());
  const uint64_t cs = cluster_size();
  const uint64_t end = offset + length;
  uint64_t full_begin = (offset + cs - 1) / cs * cs;
  uint64_t full_end = end / cs * cs;
  // The last cluster counts as whole when the request runs to the end of the disk.
  if (end == size() && end % cs != 0) full_end = (end + cs - 1) / cs * cs;
  const bool by_table = !(header_.version < 3 && backing_);
  if (!by_table || full_begin >= full_end) {
    full_begin = full_end = end;
  }
  std::vector<uint8_t> zeros(std::min<uint64_t>(std::max<uint64_t>(cs, 1 << 20), length));
  auto write_zeros = [&](uint64_t from, uint64_t to) -> IoStatus {
    while (from < to) {
      uint64_t n = std::min<uint64_t>(to - from, zeros.size());
      VIREO_TRY_STATUS(Write(from, std::span<const uint8_t>(zeros.data(), n)));
      from += n;
    }
    return {};
  };
  VIREO_TRY_STATUS(write_zeros(offset, std::min(full_begin, end)));
  if (full_begin < full_end) {
    std::shared_lock data_lock(data_);
    std::lock_guard meta(meta_);
    VIREO_TRY_STATUS(ZeroClusters(full_begin / cs, (full_end - full_begin) / cs));
  }
  return write_zeros(std::max(full_end, full_begin), end);
}

IoStatus Qcow2Image::Discard(uint64_t offset, uint64_t length) {
  // Discarded ranges read back as zeros, exactly like raw images' punched holes.
  return WriteZeroes(offset, length);
}

IoStatus Qcow2Image::Flush() {
  if (read_only_) return {};
  bool frees = false;
  {
    std::lock_guard meta(meta_);
    frees = !pending_frees_.empty();
  }
  if (!frees) return Barrier();
  std::unique_lock data_lock(data_);
  std::lock_guard meta(meta_);
  VIREO_TRY_STATUS(Barrier());
  VIREO_TRY_STATUS(ApplyPendingFrees());
  return Barrier();
}

IoStatus Qcow2Image::Resize(uint64_t new_size) {
  if (read_only_) return IoFail(EROFS, "'{}' is open read-only", path_);
  new_size = (new_size + 511) / 512 * 512;
  if (new_size > kMaxDiskSize) return IoFail(EFBIG, "{} bytes is too large", new_size);
  std::unique_lock data_lock(data_);
  std::lock_guard meta(meta_);
  const uint64_t cs = cluster_size();
  if (new_size < header_.size) {
    if (header_.nb_snapshots > 0) {
      return IoFail(ENOTSUP, "'{}' has internal snapshots: delete them before shrinking it", path_);
    }
    const uint64_t first = (new_size + cs - 1) / cs;
    const uint64_t last = (header_.size + cs - 1) / cs;
    Image* backing = backing_.release();  // Freed clusters must read as zeros, not as backing.
    auto status = ZeroClusters(first, last - first);
    backing_.reset(backing);
    VIREO_TRY_STATUS(status);
    if (new_size % cs != 0 && first > 0) {
      // The part of the new last cluster past the end must read as zeros if the disk grows.
      std::vector<uint8_t> zeros(cs - new_size % cs, 0);
      meta_.unlock();
      data_lock.unlock();
      auto st = Write(new_size, zeros);
      data_lock.lock();
      meta_.lock();
      VIREO_TRY_STATUS(st);
    }
  }
  const uint64_t needed = header_.L1EntriesFor(new_size);
  if (needed > l1_.size()) VIREO_TRY_STATUS(GrowL1(needed));
  header_.size = new_size;
  VIREO_TRY_STATUS(WriteHeader());
  VIREO_TRY_STATUS(SyncAndApplyFrees());
  return Barrier();
}

IoStatus Qcow2Image::GrowL1(uint64_t entries) {
  const uint64_t cs = cluster_size();
  if (entries * 8 > kMaxL1Bytes) return IoFail(EFBIG, "the L1 table would be too large");
  const uint64_t clusters = (entries * 8 + cs - 1) / cs;
  const uint64_t at = VIREO_TRY(refcounts_->Allocate(clusters));
  std::vector<uint8_t> raw(clusters * cs, 0);
  for (size_t i = 0; i < l1_.size(); ++i) StoreBe64(&raw[i * 8], l1_[i]);
  if (int err = WriteFully(fd_.get(), raw.data(), raw.size(), at)) {
    return IoFail(err, "writing the new L1 table: {}", strerror(err));
  }
  NoteFileEnd(at + raw.size());
  // New table and its refcounts durable, then the header switches, then the old one goes.
  VIREO_TRY_STATUS(Barrier());
  const uint64_t old_offset = header_.l1_table_offset;
  const uint64_t old_bytes = uint64_t{header_.l1_size} * 8;
  header_.l1_table_offset = at;
  header_.l1_size = static_cast<uint32_t>(entries);
  VIREO_TRY_STATUS(WriteHeader());
  VIREO_TRY_STATUS(Barrier());
  l1_.resize(entries, 0);
  if (old_bytes > 0) VIREO_TRY_STATUS(refcounts_->Update(old_offset, old_bytes, -1));
  return {};
}

tl::expected<Extent, IoError> Qcow2Image::Map(uint64_t offset, uint64_t max_length) {
  std::shared_lock data_lock(data_);
  std::unique_lock meta(meta_);
  Run run = VIREO_TRY(LookupRun(offset, max_length, false));
  Extent extent;
  extent.length = run.length;
  switch (run.kind) {
    case Kind::kNormal:
      extent.kind = Extent::Kind::kData;
      extent.host_offset = static_cast<int64_t>(run.host);
      break;
    case Kind::kCompressed:
      extent.kind = Extent::Kind::kData;
      extent.compressed = true;
      break;
    case Kind::kZero:
      extent.kind = Extent::Kind::kZero;
      break;
    case Kind::kUnallocated:
      extent.kind = Extent::Kind::kUnallocated;
      meta.unlock();
      if (backing_ && offset < backing_->size()) {
        Extent below = VIREO_TRY(
            backing_->Map(offset, std::min<uint64_t>(run.length, backing_->size() - offset)));
        below.depth += 1;
        return below;
      }
      break;
  }
  return extent;
}

uint64_t Qcow2Image::allocated_bytes() const {
  struct stat st;
  if (::fstat(fd_.get(), &st) < 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

IoStatus Qcow2Image::WriteCompressed(uint64_t offset, std::span<const uint8_t> data) {
  if (read_only_) return IoFail(EROFS, "'{}' is open read-only", path_);
  const uint64_t cs = cluster_size();
  if (offset % cs != 0 || data.size() != cs) {
    return IoFail(EINVAL, "a compressed write covers exactly one aligned cluster");
  }
  std::vector<uint8_t> packed(cs);
  // The descriptor holds at most 2^(cluster_bits-8) sectors; leave room for sector rounding.
  size_t length = Compress(header_.compression_type, data, std::span(packed).first(cs - 512));
  if (length == 0) return Write(offset, data);  // Does not shrink: store it plainly.
  std::shared_lock data_lock(data_);
  std::lock_guard meta(meta_);
  const uint64_t cluster = offset / cs;
  const uint64_t table = VIREO_TRY(WritableL2(cluster / header_.l2_entries()));
  const uint64_t old = (*VIREO_TRY(l2_cache_->Get(table)))[cluster % header_.l2_entries()];
  uint64_t at = compressed_next_;
  if (compressed_next_ >= compressed_end_ || compressed_end_ - compressed_next_ < length) {
    const uint64_t clusters = (length + cs - 1) / cs;
    at = VIREO_TRY(refcounts_->Allocate(clusters));
    compressed_end_ = at + clusters * cs;
    VIREO_TRY_STATUS(Barrier());
  } else {
    // Packed into the last compressed cluster: one more reference to it.
    VIREO_TRY_STATUS(refcounts_->Update(at, 1, 1));
    VIREO_TRY_STATUS(Barrier());
  }
  if (int err = WriteFully(fd_.get(), packed.data(), length, at)) {
    return IoFail(err, "writing '{}': {}", path_, strerror(err));
  }
  NoteFileEnd(at + length);
  compressed_next_ = (at + length + 511) / 512 * 512;
  const uint64_t entry = EncodeCompressed(at, length, header_.cluster_bits);
  VIREO_TRY_STATUS(l2_cache_->Set(table, cluster % header_.l2_entries(), std::span(&entry, 1)));
  DeferFree(old);
  return {};
}

}  // namespace vireo::block::qcow2
