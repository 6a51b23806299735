#include "img/report.h"

#include <gtest/gtest.h>

#include <set>

namespace vireo::img {
namespace {

std::set<std::string> Keys(const Json& j) {
  std::set<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.insert(it.key());
  return keys;
}

ImageInfo Qcow2Overlay() {
  ImageInfo info;
  info.filename = "top.qcow2";
  info.format = "qcow2";
  info.virtual_size = 67108864;
  info.actual_size = 397312;
  info.cluster_size = 65536;
  info.backing_filename = "base.qcow2";
  info.full_backing_filename = "base.qcow2";
  info.backing_format = "qcow2";
  info.qcow2 = Qcow2Specific{3, "zlib", false, 16, false, false};
  return info;
}

// The key sets qemu-img 7.2 prints for the same images (qemu-img info --output json).
TEST(InfoTest, JsonKeysMatchQemuImg) {
  Json j = InfoJson(Qcow2Overlay());
  EXPECT_EQ(Keys(j),
            (std::set<std::string>{"backing-filename-format", "virtual-size", "filename",
                                   "cluster-size", "format", "actual-size", "format-specific",
                                   "full-backing-filename", "backing-filename", "dirty-flag"}));
  EXPECT_EQ(j["format-specific"]["type"], "qcow2");
  EXPECT_EQ(Keys(j["format-specific"]["data"]),
            (std::set<std::string>{"compat", "compression-type", "lazy-refcounts", "refcount-bits",
                                   "corrupt", "extended-l2"}));
  EXPECT_EQ(j["format-specific"]["data"]["compat"], "1.1");
  EXPECT_EQ(j["virtual-size"], 67108864u);

  ImageInfo raw;
  raw.filename = "r.raw";
  raw.format = "raw";
  raw.virtual_size = 10485760;
  raw.actual_size = 4096;
  EXPECT_EQ(Keys(InfoJson(raw)), (std::set<std::string>{"virtual-size", "filename", "format",
                                                        "actual-size", "dirty-flag"}));
}

TEST(InfoTest, Version2HasNoFeatureKeys) {
  ImageInfo info = Qcow2Overlay();
  info.qcow2->version = 2;
  Json data = InfoJson(info)["format-specific"]["data"];
  EXPECT_EQ(Keys(data), (std::set<std::string>{"compat", "compression-type", "refcount-bits"}));
  EXPECT_EQ(data["compat"], "0.10");
}

TEST(InfoTest, SnapshotsInJson) {
  ImageInfo info = Qcow2Overlay();
  info.snapshots.push_back({"1", "snap1", 0, 1795259658, 733938000, 2500000000, 64 << 20});
  Json s = InfoJson(info)["snapshots"][0];
  EXPECT_EQ(Keys(s), (std::set<std::string>{"vm-clock-nsec", "name", "date-sec", "date-nsec",
                                            "vm-clock-sec", "id", "vm-state-size"}));
  EXPECT_EQ(s["vm-clock-sec"], 2u);
  EXPECT_EQ(s["vm-clock-nsec"], 500000000u);
}

// Byte for byte what qemu-img 7.2 printed for the same overlay.
TEST(InfoTest, HumanMatchesQemuImg) {
  EXPECT_EQ(InfoHuman(Qcow2Overlay()),
            "image: top.qcow2\n"
            "file format: qcow2\n"
            "virtual size: 64 MiB (67108864 bytes)\n"
            "disk size: 388 KiB\n"
            "cluster_size: 65536\n"
            "backing file: base.qcow2\n"
            "backing file format: qcow2\n"
            "Format specific information:\n"
            "    compat: 1.1\n"
            "    compression type: zlib\n"
            "    lazy refcounts: false\n"
            "    refcount bits: 16\n"
            "    corrupt: false\n"
            "    extended l2: false\n");
  ImageInfo moved = Qcow2Overlay();
  moved.filename = "/images/top.qcow2";
  moved.full_backing_filename = ResolveBackingPath(moved.filename, moved.backing_filename);
  EXPECT_NE(InfoHuman(moved).find("backing file: base.qcow2 (actual path: /images/base.qcow2)\n"),
            std::string::npos);
}

TEST(InfoTest, ResolveBackingPath) {
  EXPECT_EQ(ResolveBackingPath("top.qcow2", "base.qcow2"), "base.qcow2");
  EXPECT_EQ(ResolveBackingPath("dir/top.qcow2", "base.qcow2"), "dir/base.qcow2");
  EXPECT_EQ(ResolveBackingPath("/a/b/top.qcow2", "../base.raw"), "/a/b/../base.raw");
  EXPECT_EQ(ResolveBackingPath("/a/top.qcow2", "/abs/base"), "/abs/base");
  EXPECT_EQ(ResolveBackingPath("/a/top.qcow2", ""), "");
}

TEST(SnapshotTest, TableColumnsAsQemuImg) {
  std::string table = SnapshotTable(
      {{"1", "snap1", 0, 0, 0, 3723004000000ull, 0}, {"12", "nightly", 2048, 0, 0, 0, 0}});
  auto first_newline = table.find('\n');
  EXPECT_EQ(table.substr(0, first_newline),
            "ID        TAG               VM SIZE                DATE     VM CLOCK     ICOUNT");
  // ID padded to 10, TAG to 17, then VM SIZE right-aligned in 8; 1h 2m 3.004s of VM clock.
  EXPECT_EQ(table.substr(first_newline + 1, 35), "1         snap1                 0 B");
  EXPECT_NE(table.find(" 01:02:03.004"), std::string::npos);
  EXPECT_NE(table.find("\n12        nightly             2 KiB"), std::string::npos);
}

MapEntry Data(uint64_t start, uint64_t length, uint64_t offset, unsigned depth = 0) {
  MapEntry e;
  e.start = start;
  e.length = length;
  e.depth = depth;
  e.present = e.data = true;
  e.offset = offset;
  e.filename = depth == 0 ? "top.qcow2" : "base.qcow2";
  return e;
}

TEST(MapTest, MergesLikeQemuImg) {
  std::vector<MapEntry> entries;
  AppendMapEntry(entries, Data(0, 65536, 327680, 1));
  AppendMapEntry(entries, Data(65536, 65536, 393216, 1));   // Host-contiguous: merged.
  AppendMapEntry(entries, Data(131072, 65536, 600000, 1));  // Not contiguous: new entry.
  AppendMapEntry(entries, Data(196608, 65536, 665536, 0));  // Other layer: new entry.
  MapEntry hole;
  hole.start = 262144;
  hole.length = 65536;
  hole.depth = 1;
  hole.zero = true;
  hole.filename = "base.qcow2";
  AppendMapEntry(entries, hole);
  hole.start += 65536;
  AppendMapEntry(entries, hole);  // No offsets: merged by flags alone.
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].length, 131072u);
  EXPECT_EQ(entries[3].length, 131072u);
  EXPECT_EQ(MapJson(entries),
            "[{ \"start\": 0, \"length\": 131072, \"depth\": 1, \"present\": true, \"zero\": "
            "false, \"data\": true, \"offset\": 327680},\n"
            "{ \"start\": 131072, \"length\": 65536, \"depth\": 1, \"present\": true, \"zero\": "
            "false, \"data\": true, \"offset\": 600000},\n"
            "{ \"start\": 196608, \"length\": 65536, \"depth\": 0, \"present\": true, \"zero\": "
            "false, \"data\": true, \"offset\": 665536},\n"
            "{ \"start\": 262144, \"length\": 131072, \"depth\": 1, \"present\": false, "
            "\"zero\": true, \"data\": false}]\n");
  auto human = MapHuman(entries);
  ASSERT_TRUE(human);
  EXPECT_EQ(*human,
            "Offset          Length          Mapped to       File\n"
            "0               0x20000         0x50000         base.qcow2\n"
            "0x20000         0x10000         0x927c0         base.qcow2\n"
            "0x30000         0x10000         0xa27c0         top.qcow2\n");
}

TEST(MapTest, HumanRefusesCompressed) {
  MapEntry e = Data(0, 65536, 0);
  e.offset.reset();
  EXPECT_FALSE(MapHuman({e}));
  EXPECT_EQ(MapJson({e}),
            "[{ \"start\": 0, \"length\": 65536, \"depth\": 0, \"present\": true, \"zero\": "
            "false, \"data\": true}]\n");
}

TEST(CheckTest, FragmentationCountsAsQemu) {
  const uint64_t c = 65536, span = 8192 * c;
  // Contiguous: nothing fragmented.
  EXPECT_EQ(CountFragmented({{0, 4 * c, 5 * c}}, c, span), 0u);
  // A jump on the host: one fragmented cluster; compressed ones always count.
  EXPECT_EQ(CountFragmented({{0, 2 * c, 5 * c}, {2 * c, c, 20 * c}, {3 * c, 2 * c, -1}}, c, span),
            3u);
  // A new L2 table starts afresh: the first cluster there is not fragmented.
  EXPECT_EQ(CountFragmented({{0, c, 5 * c}, {span, c, 90 * c}}, c, span), 0u);
}

TEST(CheckTest, HumanMatchesQemuImg) {
  CheckReport r;
  r.filename = "base.qcow2";
  r.format = "qcow2";
  r.allocated_clusters = 16;
  r.total_clusters = 1024;
  r.image_end_offset = 1507328;
  EXPECT_EQ(CheckHuman(r),
            "No errors were found on the image.\n"
            "16/1024 = 1.56% allocated, 0.00% fragmented, 0.00% compressed clusters\n"
            "Image end offset: 1507328\n");
  EXPECT_EQ(CheckExitCode(r), 0);
  EXPECT_EQ(Keys(CheckJson(r)),
            (std::set<std::string>{"image-end-offset", "total-clusters", "check-errors",
                                   "allocated-clusters", "filename", "format"}));
  r.leaks = 2;
  EXPECT_EQ(CheckHuman(r).rfind(
                "\n2 leaked clusters were found on the image.\nThis means waste of disk space, "
                "but no harm to data.\n16/1024 = ",
                0),
            0u);
  EXPECT_EQ(CheckExitCode(r), 3);
  EXPECT_EQ(CheckJson(r)["leaks"], 2u);
  r.corruptions = 1;
  EXPECT_EQ(CheckExitCode(r), 2);
  EXPECT_NE(CheckHuman(r).find("\n1 errors were found on the image.\n"), std::string::npos);
}

}  // namespace
}  // namespace vireo::img
