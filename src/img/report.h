// What `vireo img` prints, kept apart from the I/O that gathers it so that unit tests can pin
// each output shape (report_test.cc). The layouts and JSON key names are qemu-img 7.2's
// (qemu-img.c, block/qapi.c), because scripts written for qemu-img parse them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "block/qcow2/qcow2_image.h"

namespace vireo::img {

using Json = nlohmann::ordered_json;

// ---- info -------------------------------------------------------------------------------
struct Qcow2Specific {
  int version = 3;
  std::string compression_type;  // "zlib" or "zstd"
  bool lazy_refcounts = false;
  uint32_t refcount_bits = 16;
  bool corrupt = false;
  bool extended_l2 = false;
};

struct ImageInfo {
  std::string filename;  // As the user named it.
  std::string format;
  uint64_t virtual_size = 0;
  uint64_t actual_size = 0;  // Bytes the file takes on the host.
  bool dirty = false;
  uint32_t cluster_size = 0;          // 0: the format has none (raw).
  std::string backing_filename;       // Empty: no backing file.
  std::string full_backing_filename;  // backing_filename resolved against the image's folder.
  std::string backing_format;         // Empty: not recorded in the image.
  std::vector<block::qcow2::SnapshotInfo> snapshots;
  std::optional<Qcow2Specific> qcow2;
};

// The backing file's path as the image sees it: relative names are relative to the folder of
// the image, not to the current directory (qemu's path_combine).
std::string ResolveBackingPath(const std::string& image_path, const std::string& backing);

Json InfoJson(const ImageInfo& info);
std::string InfoHuman(const ImageInfo& info);

// ---- snapshots ----------------------------------------------------------------------------
// "Snapshot list:" is the caller's; this is the header line and one line per snapshot, with
// dates in local time as qemu-img prints them.
std::string SnapshotTable(const std::vector<block::qcow2::SnapshotInfo>& snapshots);
Json SnapshotJson(const block::qcow2::SnapshotInfo& snapshot);

// ---- map ----------------------------------------------------------------------------------
struct MapEntry {
  uint64_t start = 0;
  uint64_t length = 0;
  unsigned depth = 0;
  bool present = false;  // Some layer of the chain has the bytes (or a zero flag for them).
  bool zero = false;     // Reads as zeros.
  bool data = false;     // Bytes are stored.
  std::optional<uint64_t> offset;  // Where in `filename` the bytes are, when that is plain.
  std::string filename;            // The layer's file, for the human format.
};

// Appends `next` to `entries`, merging it into the last entry when qemu-img would: same
// flags, depth and file, and, for entries with an offset, contiguous on the host too.
void AppendMapEntry(std::vector<MapEntry>& entries, MapEntry next);
// qemu-img map --output json: "[{ ... },\n{ ... }]\n".
std::string MapJson(const std::vector<MapEntry>& entries);
// qemu-img map (human): only the stored, plainly mapped stretches. Fails, as qemu-img does,
// when stored bytes have no plain offset (compressed clusters).
Result<std::string> MapHuman(const std::vector<MapEntry>& entries);

// ---- check --------------------------------------------------------------------------------
struct CheckReport {
  std::string filename;
  std::string format;
  uint64_t corruptions = 0;
  uint64_t leaks = 0;
  uint64_t check_errors = 0;
  uint64_t allocated_clusters = 0;
  uint64_t total_clusters = 0;
  uint64_t fragmented_clusters = 0;
  uint64_t compressed_clusters = 0;
  uint64_t image_end_offset = 0;
};

// One stored guest stretch of the image, in guest order, for the fragmentation count.
struct StoredRun {
  uint64_t guest_offset = 0;  // Cluster-aligned.
  uint64_t length = 0;        // A multiple of the cluster size.
  int64_t host_offset = -1;   // -1: compressed.
};
// qemu's count: within each L2 table's span, a plain cluster whose host offset does not follow
// the previous plain cluster's is fragmented, and every compressed cluster is.
uint64_t CountFragmented(const std::vector<StoredRun>& runs, uint64_t cluster_size,
                         uint64_t l2_span);

std::string CheckHuman(const CheckReport& report);
// "The following inconsistencies were found and repaired: ..." before the second check.
std::string RepairHuman(uint64_t leaks_fixed, uint64_t corruptions_fixed);
Json CheckJson(const CheckReport& report);
// qemu-img check's exit status: 2 corruptions, 3 leaks only, 0 clean (1, errors, is the
// caller's).
int CheckExitCode(const CheckReport& report);

}  // namespace vireo::img
