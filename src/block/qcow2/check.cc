// The consistency check: walk every table from the header, count the references each
// cluster gets, and compare with the stored refcounts (as `qemu-img check` does). Stored
// below counted is a corruption (the cluster could be handed out twice); stored above
// counted is a leak (space lost, data safe). Repair sets stored to counted.
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include <algorithm>

#include "block/qcow2/format.h"
#include "block/qcow2/l2_cache.h"
#include "block/qcow2/qcow2_image.h"
#include "block/qcow2/refcounts.h"
#include "block/qcow2/snapshot_table.h"

namespace vireo::block::qcow2 {

Result<CheckResult> Qcow2Image::Check(bool repair_leaks, bool repair_errors) {
  if ((repair_leaks || repair_errors) && read_only_) {
    return Fail("'{}' is open read-only: cannot repair it", path_);
  }
  std::unique_lock data_lock(data_);
  std::lock_guard meta(meta_);
  return CheckLocked(repair_leaks || repair_errors, repair_errors);
}

Result<CheckResult> Qcow2Image::CheckLocked(bool repair_leaks, bool repair_all) {
  CheckResult result;
  auto io = [](const IoStatus& status) -> Status {
    if (!status) return Fail("{}", status.error().message);
    return {};
  };
  if (!read_only_) {
    // Clusters held for coming writes and references already dropped are not leaks.
    VIREO_TRY_STATUS(io(ReleasePool()));
    VIREO_TRY_STATUS(io(SyncAndApplyFrees()));
  }
  compressed_next_ = compressed_end_ = 0;
  const uint64_t cs = cluster_size();
  struct stat st;
  if (::fstat(fd_.get(), &st) < 0) return Fail("fstat: {}", strerror(errno));
  file_end_ = std::max<uint64_t>(file_end_, st.st_size);
  const uint64_t file_clusters = (static_cast<uint64_t>(st.st_size) + cs - 1) / cs;
  std::vector<uint64_t> refs(file_clusters, 0);

  auto report = [&](std::string message) {
    ++result.corruptions;
    if (result.messages.size() < 1000) result.messages.push_back(std::move(message));
  };
  auto add = [&](uint64_t offset, uint64_t length, const char* what) {
    if (length == 0) return;
    const uint64_t first = offset / cs;
    const uint64_t last = (offset + length - 1) / cs;
    if (last >= file_clusters) {
      report(fmt::format("ERROR {} at {:#x} lies past the end of the file", what, offset));
      return;
    }
    for (uint64_t c = first; c <= last; ++c) ++refs[c];
  };

  add(0, cs, "header");
  add(header_.l1_table_offset, uint64_t{header_.l1_size} * 8, "L1 table");
  add(header_.refcount_table_offset, uint64_t{header_.refcount_table_clusters} * cs,
      "refcount table");
  for (uint64_t block : refcounts_->table()) {
    if (block == 0) continue;
    add(block, cs, "refcount block");
  }

  struct ActiveEntry {
    uint64_t host;
    uint64_t l1_index;
    uint64_t l2_index;  // ~0 for the L2 table itself
    bool copied;
  };
  std::vector<ActiveEntry> active;
  uint64_t next_contiguous = 0;
  auto walk = [&](const std::vector<uint64_t>& l1, bool is_active) -> Status {
    for (uint64_t i = 0; i < l1.size(); ++i) {
      const uint64_t table = l1[i] & kL1OffsetMask;
      if (table == 0) continue;
      if ((table & (cs - 1)) != 0 || table + cs > file_end_) {
        report(fmt::format("ERROR L1 entry {} points at an invalid L2 table {:#x}", i, table));
        continue;
      }
      add(table, cs, "L2 table");
      if (is_active) active.push_back({table, i, ~0ull, (l1[i] & kOflagCopied) != 0});
      auto loaded = l2_cache_->Get(table);
      if (!loaded) return Fail("{}", loaded.error().message);
      const std::vector<uint64_t> entries = **loaded;
      for (uint64_t j = 0; j < entries.size(); ++j) {
        const uint64_t entry = entries[j];
        const uint64_t guest = (i * header_.l2_entries() + j) * cs;
        switch (KindOf(entry)) {
          case Kind::kCompressed: {
            const CompressedRange range = DecodeCompressed(entry, header_.cluster_bits);
            add(range.span_start, range.span_length, "compressed cluster");
            if (is_active) {
              ++result.allocated_clusters;
              ++result.compressed_clusters;
            }
            break;
          }
          case Kind::kNormal:
          case Kind::kZero: {
            const uint64_t host = entry & kL2OffsetMask;
            if (host == 0) break;
            if ((host & (cs - 1)) != 0) {
              report(
                  fmt::format("ERROR cluster at guest offset {:#x}: host offset {:#x} is not "
                              "cluster-aligned",
                              guest, host));
              break;
            }
            add(host, cs, "data cluster");
            if (is_active) {
              active.push_back({host, i, j, (entry & kOflagCopied) != 0});
              ++result.allocated_clusters;
              if (next_contiguous != 0 && host != next_contiguous) ++result.fragmented_clusters;
              next_contiguous = host + cs;
            }
            break;
          }
          case Kind::kUnallocated:
            break;
        }
      }
    }
    return {};
  };
  VIREO_TRY_STATUS(walk(l1_, true));

  if (header_.nb_snapshots > 0) {
    auto snapshots = ReadSnapshots();
    if (!snapshots) {
      report(fmt::format("ERROR snapshot table: {}", snapshots.error().message));
    } else {
      add(header_.snapshots_offset, SerializeSnapshotTable(*snapshots).size(), "snapshot table");
      for (const SnapshotEntry& s : *snapshots) {
        add(s.l1_table_offset, uint64_t{s.l1_size} * 8, "snapshot L1 table");
        VIREO_TRY_STATUS(walk(VIREO_TRY(ReadL1(s.l1_table_offset, s.l1_size)), false));
      }
    }
  }

  // Compare, and repair where asked. During the repair, new refcount blocks must not land on
  // clusters the walk found in use.
  refcounts_->SetInUse([&refs](uint64_t c) { return c < refs.size() && refs[c] > 0; });
  Status repair_status;
  for (uint64_t c = 0; c < refs.size(); ++c) {
    auto stored = refcounts_->Get(c);
    if (!stored) {
      report(fmt::format("ERROR refcount of cluster {}: {}", c, stored.error().message));
      continue;
    }
    if (*stored == refs[c]) continue;
    if (refs[c] > refcounts_->max_refcount()) {
      report(fmt::format("ERROR cluster {} has {} references: the refcount overflows", c, refs[c]));
      continue;
    }
    const bool leak = *stored > refs[c];
    const bool fix = leak ? (repair_leaks || repair_all) : repair_all;
    if (leak) {
      ++result.leaks;
    } else {
      ++result.corruptions;
    }
    if (result.messages.size() < 1000) {
      result.messages.push_back(fmt::format("{} cluster {} refcount={} reference={}",
                                            fix ? "Repairing" : (leak ? "Leaked" : "ERROR"), c,
                                            *stored, refs[c]));
    }
    if (fix && !read_only_) {
      if (auto status = refcounts_->Set(c, refs[c]); !status) {
        repair_status = Fail("{}", status.error().message);
        break;
      }
      if (leak) {
        ++result.leaks_fixed;
      } else {
        --result.corruptions;
        ++result.corruptions_fixed;
      }
    }
  }
  refcounts_->SetInUse(nullptr);
  VIREO_TRY_STATUS(repair_status);
  if (result.leaks_fixed > 0) result.leaks -= result.leaks_fixed;

  // OFLAG_COPIED must say exactly whether the refcount is 1.
  for (const ActiveEntry& e : active) {
    const uint64_t refs_now = e.host / cs < refs.size() ? refs[e.host / cs] : 0;
    if (e.copied == (refs_now == 1)) continue;
    if (repair_all && !read_only_) {  // FixCopiedFlags below rewrites them.
      ++result.corruptions_fixed;
      continue;
    }
    report(fmt::format("ERROR OFLAG_COPIED {}: offset={:#x} refcount={}",
                       e.l2_index == ~0ull ? "L2 cluster" : "data cluster", e.host, refs_now));
  }
  if (repair_all && !read_only_) VIREO_TRY_STATUS(io(FixCopiedFlags()));
  if (!read_only_ && (repair_leaks || repair_all)) VIREO_TRY_STATUS(io(Barrier()));

  uint64_t last_used = 0;
  for (uint64_t c = 0; c < refs.size(); ++c) {
    if (refs[c] > 0) last_used = c + 1;
  }
  result.image_end_offset = last_used * cs;
  result.total_clusters = (header_.size + cs - 1) / cs;
  return result;
}

}  // namespace vireo::block::qcow2
