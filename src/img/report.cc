#include "img/report.h"

#include <time.h>

#include <cinttypes>
#include <cstdio>

#include "img/options.h"

namespace vireo::img {
namespace {

std::string Printf(const char* format, auto... args) {
  char buffer[512];
  int n = std::snprintf(buffer, sizeof(buffer), format, args...);
  return std::string(buffer,
                     static_cast<size_t>(std::max(0, std::min<int>(n, sizeof(buffer) - 1))));
}

}  // namespace

std::string ResolveBackingPath(const std::string& image_path, const std::string& backing) {
  if (backing.empty() || backing.front() == '/') return backing;
  size_t slash = image_path.rfind('/');
  if (slash == std::string::npos) return backing;
  return image_path.substr(0, slash + 1) + backing;
}

Json SnapshotJson(const block::qcow2::SnapshotInfo& s) {
  // No "icount": Vireo does not record it, and qemu-img leaves the key out when unknown.
  return Json{{"id", s.id},
              {"name", s.name},
              {"vm-state-size", s.vm_state_size},
              {"date-sec", s.date_sec},
              {"date-nsec", s.date_nsec},
              {"vm-clock-sec", s.vm_clock_nsec / 1000000000},
              {"vm-clock-nsec", s.vm_clock_nsec % 1000000000}};
}

Json InfoJson(const ImageInfo& info) {
  Json j;
  j["filename"] = info.filename;
  j["format"] = info.format;
  j["virtual-size"] = info.virtual_size;
  j["actual-size"] = info.actual_size;
  j["dirty-flag"] = info.dirty;
  if (info.cluster_size != 0) j["cluster-size"] = info.cluster_size;
  if (!info.backing_filename.empty()) {
    j["backing-filename"] = info.backing_filename;
    j["full-backing-filename"] = info.full_backing_filename;
    if (!info.backing_format.empty()) j["backing-filename-format"] = info.backing_format;
  }
  if (!info.snapshots.empty()) {
    Json list = Json::array();
    for (const auto& s : info.snapshots) list.push_back(SnapshotJson(s));
    j["snapshots"] = std::move(list);
  }
  if (info.qcow2) {
    const Qcow2Specific& q = *info.qcow2;
    Json data;
    data["compat"] = q.version == 2 ? "0.10" : "1.1";
    data["compression-type"] = q.compression_type;
    // Version 2 has no feature bits, so qemu-img reports none of them.
    if (q.version >= 3) data["lazy-refcounts"] = q.lazy_refcounts;
    data["refcount-bits"] = q.refcount_bits;
    if (q.version >= 3) {
      data["corrupt"] = q.corrupt;
      data["extended-l2"] = q.extended_l2;
    }
    j["format-specific"] = Json{{"type", "qcow2"}, {"data", std::move(data)}};
  }
  return j;
}

std::string InfoHuman(const ImageInfo& info) {
  std::string out = fmt::format(
      "image: {}\nfile format: {}\nvirtual size: {} ({} bytes)\ndisk size: {}\n", info.filename,
      info.format, HumanSize(info.virtual_size), info.virtual_size, HumanSize(info.actual_size));
  if (info.cluster_size != 0) out += fmt::format("cluster_size: {}\n", info.cluster_size);
  if (info.dirty) out += "cleanly shut down: no\n";
  if (!info.backing_filename.empty()) {
    out += fmt::format("backing file: {}", info.backing_filename);
    if (info.full_backing_filename != info.backing_filename) {
      out += fmt::format(" (actual path: {})", info.full_backing_filename);
    }
    out += '\n';
    if (!info.backing_format.empty()) {
      out += fmt::format("backing file format: {}\n", info.backing_format);
    }
  }
  if (!info.snapshots.empty()) out += "Snapshot list:\n" + SnapshotTable(info.snapshots);
  if (info.qcow2) {
    const Qcow2Specific& q = *info.qcow2;
    out += "Format specific information:\n";
    out += fmt::format("    compat: {}\n", q.version == 2 ? "0.10" : "1.1");
    out += fmt::format("    compression type: {}\n", q.compression_type);
    if (q.version >= 3) out += fmt::format("    lazy refcounts: {}\n", q.lazy_refcounts);
    out += fmt::format("    refcount bits: {}\n", q.refcount_bits);
    if (q.version >= 3) {
      out += fmt::format("    corrupt: {}\n", q.corrupt);
      out += fmt::format("    extended l2: {}\n", q.extended_l2);
    }
  }
  return out;
}

std::string SnapshotTable(const std::vector<block::qcow2::SnapshotInfo>& snapshots) {
  // Column widths from qemu's bdrv_snapshot_dump.
  std::string out =
      Printf("%-10s%-17s%8s%20s%13s%11s\n", "ID", "TAG", "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
  for (const auto& s : snapshots) {
    time_t t = s.date_sec;
    struct tm tm {};
    localtime_r(&t, &tm);
    char date[32];
    std::strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);
    uint64_t secs = s.vm_clock_nsec / 1000000000;
    std::string clock = Printf("%02d:%02d:%02d.%03d", static_cast<int>(secs / 3600),
                               static_cast<int>((secs / 60) % 60), static_cast<int>(secs % 60),
                               static_cast<int>((s.vm_clock_nsec / 1000000) % 1000));
    out += Printf("%-9s %-16s %8s%20s%13s%11s\n", s.id.c_str(), s.name.c_str(),
                  HumanSize(s.vm_state_size).c_str(), date, clock.c_str(), "");
  }
  return out;
}

void AppendMapEntry(std::vector<MapEntry>& entries, MapEntry next) {
  if (!entries.empty()) {
    MapEntry& last = entries.back();
    bool same = last.length != 0 && last.zero == next.zero && last.data == next.data &&
                last.depth == next.depth && last.present == next.present &&
                last.filename == next.filename &&
                last.offset.has_value() == next.offset.has_value();
    if (same && last.offset && *last.offset + last.length != *next.offset) same = false;
    if (same && last.start + last.length == next.start) {
      last.length += next.length;
      return;
    }
  }
  entries.push_back(std::move(next));
}

std::string MapJson(const std::vector<MapEntry>& entries) {
  std::string out = "[";
  for (size_t i = 0; i < entries.size(); ++i) {
    const MapEntry& e = entries[i];
    out += fmt::format(
        "{{ \"start\": {}, \"length\": {}, \"depth\": {}, \"present\": {}, \"zero\": {}, "
        "\"data\": {}",
        e.start, e.length, e.depth, e.present, e.zero, e.data);
    if (e.offset) out += fmt::format(", \"offset\": {}", *e.offset);
    out += '}';
    if (i + 1 < entries.size()) out += ",\n";
  }
  out += "]\n";
  return out;
}

Result<std::string> MapHuman(const std::vector<MapEntry>& entries) {
  std::string out = Printf("%-16s%-16s%-16s%s\n", "Offset", "Length", "Mapped to", "File");
  for (const MapEntry& e : entries) {
    if (!e.data) continue;
    if (!e.offset) {
      return Fail(
          "the image has compressed clusters, which have no plain offset: use --output json");
    }
    out += Printf("%#-16" PRIx64 "%#-16" PRIx64 "%#-16" PRIx64 "%s\n", e.start, e.length, *e.offset,
                  e.filename.c_str());
  }
  return out;
}

uint64_t CountFragmented(const std::vector<StoredRun>& runs, uint64_t cluster_size,
                         uint64_t l2_span) {
  uint64_t fragmented = 0;
  uint64_t next_contiguous = 0;  // 0: no plain cluster yet in this L2 table.
  uint64_t table = UINT64_MAX;
  for (const StoredRun& run : runs) {
    for (uint64_t off = 0; off < run.length; off += cluster_size) {
      uint64_t guest = run.guest_offset + off;
      if (guest / l2_span != table) {
        table = guest / l2_span;
        next_contiguous = 0;
      }
      if (run.host_offset < 0) {
        ++fragmented;  // Compressed clusters are fragmented by nature (qemu's words).
        continue;
      }
      uint64_t host = static_cast<uint64_t>(run.host_offset) + off;
      if (next_contiguous != 0 && host != next_contiguous) ++fragmented;
      next_contiguous = host + cluster_size;
    }
  }
  return fragmented;
}

std::string CheckHuman(const CheckReport& r) {
  std::string out;
  if (r.corruptions == 0 && r.leaks == 0 && r.check_errors == 0) {
    out += "No errors were found on the image.\n";
  } else {
    if (r.corruptions != 0) {
      out += fmt::format(
          "\n{} errors were found on the image.\nData may be corrupted, or further writes to "
          "the image may corrupt it.\n",
          r.corruptions);
    }
    if (r.leaks != 0) {
      out += fmt::format(
          "\n{} leaked clusters were found on the image.\nThis means waste of disk space, but "
          "no harm to data.\n",
          r.leaks);
    }
    if (r.check_errors != 0) {
      out += fmt::format("\n{} internal errors have occurred during the check.\n", r.check_errors);
    }
  }
  if (r.total_clusters != 0 && r.allocated_clusters != 0) {
    const double allocated = static_cast<double>(r.allocated_clusters);
    out += Printf("%" PRIu64 "/%" PRIu64
                  " = %0.2f%% allocated, %0.2f%% fragmented, %0.2f%% "
                  "compressed clusters\n",
                  r.allocated_clusters, r.total_clusters,
                  allocated * 100.0 / static_cast<double>(r.total_clusters),
                  static_cast<double>(r.fragmented_clusters) * 100.0 / allocated,
                  static_cast<double>(r.compressed_clusters) * 100.0 / allocated);
  }
  if (r.image_end_offset != 0) out += fmt::format("Image end offset: {}\n", r.image_end_offset);
  return out;
}

std::string RepairHuman(uint64_t leaks_fixed, uint64_t corruptions_fixed) {
  return fmt::format(
      "The following inconsistencies were found and repaired:\n\n    {} leaked clusters\n    {} "
      "corruptions\n\nDouble checking the fixed image now...\n",
      leaks_fixed, corruptions_fixed);
}

Json CheckJson(const CheckReport& r) {
  // qemu-img leaves out the counters that are zero, except check-errors.
  Json j;
  j["filename"] = r.filename;
  j["format"] = r.format;
  j["check-errors"] = r.check_errors;
  if (r.corruptions != 0) j["corruptions"] = r.corruptions;
  if (r.leaks != 0) j["leaks"] = r.leaks;
  if (r.image_end_offset != 0) j["image-end-offset"] = r.image_end_offset;
  if (r.total_clusters != 0) j["total-clusters"] = r.total_clusters;
  if (r.allocated_clusters != 0) j["allocated-clusters"] = r.allocated_clusters;
  if (r.fragmented_clusters != 0) j["fragmented-clusters"] = r.fragmented_clusters;
  if (r.compressed_clusters != 0) j["compressed-clusters"] = r.compressed_clusters;
  return j;
}

int CheckExitCode(const CheckReport& r) {
  if (r.corruptions != 0) return 2;
  if (r.leaks != 0) return 3;
  return 0;
}

}  // namespace vireo::img
