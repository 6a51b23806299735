// Internal snapshots. A snapshot is a copy of the L1 table plus one more reference on every
// L2 table and cluster it reaches; writes then copy shared clusters (OFLAG_COPIED clear).
// Order for crash safety: raise refcounts, make them durable, then publish the snapshot
// table through the header; on delete, unpublish first, then drop the refcounts.
#include <errno.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <map>

#include "block/image_file.h"
#include "block/qcow2/format.h"
#include "block/qcow2/l2_cache.h"
#include "block/qcow2/qcow2_image.h"
#include "block/qcow2/refcounts.h"
#include "block/qcow2/snapshot_table.h"

namespace vireo::block::qcow2 {
namespace {

Status ToStatus(const IoStatus& status) {
  if (!status) return Fail("{}", status.error().message);
  return {};
}

// An ID matches first, then a name (as qemu-img does).
std::vector<SnapshotEntry>::iterator FindSnapshot(std::vector<SnapshotEntry>& entries,
                                                  const std::string& name_or_id) {
  auto it = std::find_if(entries.begin(), entries.end(),
                         [&](const SnapshotEntry& e) { return e.id == name_or_id; });
  if (it != entries.end()) return it;
  return std::find_if(entries.begin(), entries.end(),
                      [&](const SnapshotEntry& e) { return e.name == name_or_id; });
}

}  // namespace

Result<std::vector<uint64_t>> Qcow2Image::ReadL1(uint64_t offset, uint32_t entries) {
  std::vector<uint8_t> raw(uint64_t{entries} * 8);
  if (int err = ReadFully(fd_.get(), raw.data(), raw.size(), offset)) {
    return Fail("reading a snapshot's L1 table: {}", strerror(err));
  }
  std::vector<uint64_t> l1(entries);
  for (uint32_t i = 0; i < entries; ++i) l1[i] = LoadBe64(&raw[i * 8ull]);
  return l1;
}

Result<std::vector<SnapshotEntry>> Qcow2Image::ReadSnapshots() {
  if (header_.nb_snapshots == 0) return std::vector<SnapshotEntry>{};
  const uint64_t available = file_end_ - std::min(file_end_, header_.snapshots_offset);
  std::vector<uint8_t> raw(std::min<uint64_t>(available, 64ull << 20));
  if (int err = ReadFully(fd_.get(), raw.data(), raw.size(), header_.snapshots_offset)) {
    return Fail("reading the snapshot table: {}", strerror(err));
  }
  auto entries = ParseSnapshotTable(raw, header_.nb_snapshots, cluster_size(), file_end_);
  if (!entries) return Fail("'{}' is damaged: {}", path_, entries.error().message);
  return entries;
}

Status Qcow2Image::WriteSnapshots(const std::vector<SnapshotEntry>& entries) {
  const uint64_t cs = cluster_size();
  const uint64_t old_offset = header_.snapshots_offset;
  auto old = ReadSnapshots();
  const uint64_t old_bytes = old ? SerializeSnapshotTable(*old).size() : 0;
  uint64_t at = 0;
  if (!entries.empty()) {
    std::vector<uint8_t> raw = SerializeSnapshotTable(entries);
    const uint64_t clusters = (raw.size() + cs - 1) / cs;
    auto allocated = refcounts_->Allocate(clusters);
    if (!allocated) return Fail("{}", allocated.error().message);
    at = *allocated;
    raw.resize(clusters * cs, 0);
    if (int err = WriteFully(fd_.get(), raw.data(), raw.size(), at)) {
      return Fail("writing the snapshot table: {}", strerror(err));
    }
    NoteFileEnd(at + raw.size());
    VIREO_TRY_STATUS(ToStatus(Barrier()));
  }
  header_.snapshots_offset = at;
  header_.nb_snapshots = static_cast<uint32_t>(entries.size());
  VIREO_TRY_STATUS(ToStatus(WriteHeader()));
  VIREO_TRY_STATUS(ToStatus(Barrier()));
  if (old_bytes > 0) VIREO_TRY_STATUS(ToStatus(refcounts_->Update(old_offset, old_bytes, -1)));
  return {};
}

IoStatus Qcow2Image::UpdateSnapshotRefcounts(const std::vector<uint64_t>& l1, int64_t delta) {
  const uint64_t cs = cluster_size();
  for (uint64_t l1_entry : l1) {
    const uint64_t table = l1_entry & kL1OffsetMask;
    if (table == 0) continue;
    std::vector<uint64_t> entries = *VIREO_TRY(l2_cache_->Get(table));
    for (uint64_t i = 0; i < entries.size(); ++i) {
      const uint64_t entry = entries[i];
      switch (KindOf(entry)) {
        case Kind::kCompressed: {
          const CompressedRange range = DecodeCompressed(entry, header_.cluster_bits);
          VIREO_TRY_STATUS(refcounts_->Update(range.span_start, range.span_length, delta));
          break;
        }
        case Kind::kNormal:
        case Kind::kZero:
          if (uint64_t host = entry & kL2OffsetMask; host != 0) {
            VIREO_TRY_STATUS(refcounts_->Update(host, cs, delta));
          }
          break;
        case Kind::kUnallocated:
          break;
      }
    }
    VIREO_TRY_STATUS(refcounts_->Update(table, cs, delta));
  }
  return {};
}

IoStatus Qcow2Image::CheckSnapshotFits(const std::vector<uint64_t>& l1) {
  const uint64_t cs = cluster_size();
  std::map<uint64_t, uint64_t> added;  // Cluster -> references the snapshot adds.
  auto add = [&](uint64_t offset, uint64_t length) {
    for (uint64_t c = offset / cs; c <= (offset + length - 1) / cs; ++c) ++added[c];
  };
  for (uint64_t l1_entry : l1) {
    const uint64_t table = l1_entry & kL1OffsetMask;
    if (table == 0) continue;
    add(table, cs);
    std::vector<uint64_t> entries = *VIREO_TRY(l2_cache_->Get(table));
    for (uint64_t entry : entries) {
      if (KindOf(entry) == Kind::kCompressed) {
        const CompressedRange range = DecodeCompressed(entry, header_.cluster_bits);
        add(range.span_start, range.span_length);
      } else if (uint64_t host = entry & kL2OffsetMask;
                 host != 0 && KindOf(entry) != Kind::kUnallocated) {
        add(host, cs);
      }
    }
  }
  for (const auto& [cluster, count] : added) {
    const uint64_t now = VIREO_TRY(refcounts_->Get(cluster));
    if (refcounts_->max_refcount() - now < count) {
      return IoFail(EIO, "refcount of cluster {:#x} would overflow {} bits with another snapshot",
                    cluster * cs, header_.refcount_bits());
    }
  }
  return {};
}

IoStatus Qcow2Image::FixCopiedFlags() {
  for (uint64_t i = 0; i < l1_.size(); ++i) {
    const uint64_t table = l1_[i] & kL1OffsetMask;
    if (table == 0) continue;
    const uint64_t table_refs = VIREO_TRY(refcounts_->Get(table / cluster_size()));
    const uint64_t want_l1 = table | (table_refs == 1 ? kOflagCopied : 0);
    if (want_l1 != l1_[i]) VIREO_TRY_STATUS(WriteL1Entry(i, want_l1));
    // Shared tables too: the flag only matters to the active view, and QEMU checks it there.
    std::vector<uint64_t> entries = *VIREO_TRY(l2_cache_->Get(table));
    bool changed = false;
    for (uint64_t& entry : entries) {
      const uint64_t host = entry & kL2OffsetMask;
      if ((entry & kOflagCompressed) || host == 0) continue;
      const uint64_t refs = VIREO_TRY(refcounts_->Get(host / cluster_size()));
      const uint64_t want = refs == 1 ? (entry | kOflagCopied) : (entry & ~kOflagCopied);
      if (want != entry) {
        entry = want;
        changed = true;
      }
    }
    if (changed) VIREO_TRY_STATUS(l2_cache_->Put(table, std::move(entries)));
  }
  return {};
}

Result<std::vector<SnapshotInfo>> Qcow2Image::ListSnapshots() {
  std::lock_guard meta(meta_);
  std::vector<SnapshotInfo> out;
  for (const SnapshotEntry& e : VIREO_TRY(ReadSnapshots())) {
    out.push_back(
        {e.id, e.name, e.vm_state_size, e.date_sec, e.date_nsec, e.vm_clock_nsec, e.disk_size});
  }
  return out;
}

Status Qcow2Image::CreateSnapshot(const std::string& name) {
  if (read_only_) return Fail("'{}' is open read-only", path_);
  if (name.empty() || name.size() > 0xffff) return Fail("a snapshot needs a name");
  std::unique_lock data_lock(data_);
  std::lock_guard meta(meta_);
  VIREO_TRY_STATUS(ToStatus(ReleasePool()));
  VIREO_TRY_STATUS(ToStatus(SyncAndApplyFrees()));
  std::vector<SnapshotEntry> entries = VIREO_TRY(ReadSnapshots());
  uint64_t next_id = 1;
  for (const SnapshotEntry& e : entries) {
    if (e.name == name) return Fail("a snapshot named '{}' already exists", name);
    next_id = std::max<uint64_t>(next_id, strtoull(e.id.c_str(), nullptr, 10) + 1);
  }
  const uint64_t cs = cluster_size();
  // Refuse before writing anything: an overflowing refcount would fail half-way through.
  VIREO_TRY_STATUS(ToStatus(CheckSnapshotFits(l1_)));
  SnapshotEntry snap;
  snap.id = std::to_string(next_id);
  snap.name = name;
  snap.l1_size = static_cast<uint32_t>(l1_.size());
  snap.disk_size = header_.size;
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  snap.date_sec = static_cast<uint32_t>(now.tv_sec);
  snap.date_nsec = static_cast<uint32_t>(now.tv_nsec);
  if (!l1_.empty()) {
    const uint64_t clusters = (l1_.size() * 8 + cs - 1) / cs;
    auto at = refcounts_->Allocate(clusters);
    if (!at) return Fail("{}", at.error().message);
    snap.l1_table_offset = *at;
    std::vector<uint8_t> raw(clusters * cs, 0);
    for (size_t i = 0; i < l1_.size(); ++i) StoreBe64(&raw[i * 8], l1_[i] & ~kOflagCopied);
    if (int err = WriteFully(fd_.get(), raw.data(), raw.size(), *at)) {
      return Fail("writing the snapshot's L1 table: {}", strerror(err));
    }
    NoteFileEnd(*at + raw.size());
  }
  VIREO_TRY_STATUS(ToStatus(UpdateSnapshotRefcounts(l1_, +1)));
  VIREO_TRY_STATUS(ToStatus(Barrier()));
  // Everything the active L1 reaches is shared now: clear OFLAG_COPIED so writes copy.
  VIREO_TRY_STATUS(ToStatus(FixCopiedFlags()));
  entries.push_back(std::move(snap));
  return WriteSnapshots(entries);
}

Status Qcow2Image::ApplySnapshot(const std::string& name_or_id) {
  if (read_only_) return Fail("'{}' is open read-only", path_);
  std::unique_lock data_lock(data_);
  std::lock_guard meta(meta_);
  VIREO_TRY_STATUS(ToStatus(ReleasePool()));
  VIREO_TRY_STATUS(ToStatus(SyncAndApplyFrees()));
  std::vector<SnapshotEntry> entries = VIREO_TRY(ReadSnapshots());
  auto it = FindSnapshot(entries, name_or_id);
  if (it == entries.end()) return Fail("no snapshot '{}' in '{}'", name_or_id, path_);
  std::vector<uint64_t> snap_l1 = VIREO_TRY(ReadL1(it->l1_table_offset, it->l1_size));
  const std::vector<uint64_t> old_l1 = l1_;
  VIREO_TRY_STATUS(ToStatus(UpdateSnapshotRefcounts(snap_l1, +1)));
  VIREO_TRY_STATUS(ToStatus(Barrier()));
  if (snap_l1.size() > l1_.size()) VIREO_TRY_STATUS(ToStatus(GrowL1(snap_l1.size())));
  for (size_t i = 0; i < l1_.size(); ++i) {
    const uint64_t value = i < snap_l1.size() ? snap_l1[i] & ~kOflagCopied : 0;
    if (value != l1_[i]) VIREO_TRY_STATUS(ToStatus(WriteL1Entry(i, value)));
  }
  if (it->disk_size != 0 && it->disk_size != header_.size) {
    header_.size = it->disk_size;
    VIREO_TRY_STATUS(ToStatus(WriteHeader()));
  }
  VIREO_TRY_STATUS(ToStatus(Barrier()));
  VIREO_TRY_STATUS(ToStatus(UpdateSnapshotRefcounts(old_l1, -1)));
  VIREO_TRY_STATUS(ToStatus(FixCopiedFlags()));
  return ToStatus(Barrier());
}

Status Qcow2Image::DeleteSnapshot(const std::string& name_or_id) {
  if (read_only_) return Fail("'{}' is open read-only", path_);
  std::unique_lock data_lock(data_);
  std::lock_guard meta(meta_);
  VIREO_TRY_STATUS(ToStatus(ReleasePool()));
  VIREO_TRY_STATUS(ToStatus(SyncAndApplyFrees()));
  std::vector<SnapshotEntry> entries = VIREO_TRY(ReadSnapshots());
  auto it = FindSnapshot(entries, name_or_id);
  if (it == entries.end()) return Fail("no snapshot '{}' in '{}'", name_or_id, path_);
  SnapshotEntry gone = *it;
  entries.erase(it);
  std::vector<uint64_t> snap_l1 = VIREO_TRY(ReadL1(gone.l1_table_offset, gone.l1_size));
  VIREO_TRY_STATUS(WriteSnapshots(entries));
  VIREO_TRY_STATUS(ToStatus(UpdateSnapshotRefcounts(snap_l1, -1)));
  if (gone.l1_size > 0) {
    VIREO_TRY_STATUS(
        ToStatus(refcounts_->Update(gone.l1_table_offset, uint64_t{gone.l1_size} * 8, -1)));
  }
  VIREO_TRY_STATUS(ToStatus(FixCopiedFlags()));
  return ToStatus(Barrier());
}

}  // namespace vireo::block::qcow2
