#include "block/qcow2/header.h"

#include "block/qcow2/format.h"

namespace vireo::block::qcow2 {
namespace {

constexpr uint32_t kMaxBackingFileName = 1023;  // As QEMU.

bool Aligned(uint64_t offset, uint32_t cluster_size) { return (offset & (cluster_size - 1)) == 0; }

// Whether [offset, offset + length) lies inside the file, without overflow.
bool InFile(uint64_t offset, uint64_t length, uint64_t file_size) {
  return offset <= file_size && length <= file_size - offset;
}

bool Overlaps(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) {
  return a_len > 0 && b_len > 0 && a < b + b_len && b < a + a_len;
}

std::string FeatureLabel(const Header& h, uint8_t type, uint8_t bit) {
  for (const FeatureName& f : h.feature_names) {
    if (f.type == type && f.bit == bit) return fmt::format("'{}' (bit {})", f.name, bit);
  }
  return fmt::format("bit {}", bit);
}

Status ParseExtensions(Header& h, std::span<const uint8_t> bytes, uint64_t start) {
  uint64_t pos = start;
  const uint64_t end = std::min<uint64_t>(bytes.size(), h.cluster_size());
  for (int count = 0; count < 1024; ++count) {  // A cluster holds far fewer.
    if (pos + 8 > end) return Fail("qcow2 header extensions run past the header cluster");
    uint32_t type = LoadBe32(&bytes[pos]);
    uint32_t length = LoadBe32(&bytes[pos + 4]);
    pos += 8;
    if (type == kExtEnd) return {};
    if (length > end - pos) {
      return Fail("qcow2 header extension {:#x} ({} bytes) runs past the header cluster", type,
                  length);
    }
    std::span<const uint8_t> data = bytes.subspan(pos, length);
    switch (type) {
      case kExtBackingFormat:
        h.backing_format.assign(data.begin(), data.end());
        break;
      case kExtFeatureNames:
        for (size_t i = 0; i + 48 <= data.size(); i += 48) {
          const auto* name = reinterpret_cast<const char*>(&data[i + 2]);
          h.feature_names.push_back({data[i], data[i + 1], std::string(name, strnlen(name, 46))});
        }
        break;
      case kExtExternalData:
        return Fail("the image stores its data in an external file, which Vireo does not support");
      default:
        h.other_extensions.push_back({type, std::vector<uint8_t>(data.begin(), data.end())});
        break;
    }
    pos += (static_cast<uint64_t>(length) + 7) & ~7ull;
  }
  return Fail("qcow2 header has too many extensions");
}

}  // namespace

uint64_t Header::L1EntriesFor(uint64_t bytes) const {
  const uint64_t per_l1 = l2_entries() * cluster_size();  // Bytes one L2 table maps.
  return (bytes + per_l1 - 1) / per_l1;
}

std::vector<FeatureName> KnownFeatureNames() {
  return {{0, 0, "dirty bit"},        {0, 1, "corrupt bit"},         {0, 2, "external data file"},
          {0, 3, "compression type"}, {0, 4, "extended L2 entries"}, {1, 0, "lazy refcounts"},
          {2, 0, "bitmaps"},          {2, 1, "raw external data"}};
}

Result<Header> ParseHeader(std::span<const uint8_t> b, uint64_t file_size) {
  if (b.size() < kV2HeaderLength) return Fail("file is too short to be a qcow2 image");
  if (LoadBe32(&b[0]) != kMagic) return Fail("not a qcow2 image (no QFI\\xfb magic)");
  Header h;
  h.version = LoadBe32(&b[4]);
  if (h.version != 2 && h.version != 3) {
    return Fail("qcow2 version {} is not supported (only 2 and 3)", h.version);
  }
  h.backing_file_offset = LoadBe64(&b[8]);
  h.backing_file_size = LoadBe32(&b[16]);
  h.cluster_bits = LoadBe32(&b[20]);
  h.size = LoadBe64(&b[24]);
  h.crypt_method = LoadBe32(&b[32]);
  h.l1_size = LoadBe32(&b[36]);
  h.l1_table_offset = LoadBe64(&b[40]);
  h.refcount_table_offset = LoadBe64(&b[48]);
  h.refcount_table_clusters = LoadBe32(&b[56]);
  h.nb_snapshots = LoadBe32(&b[60]);
  h.snapshots_offset = LoadBe64(&b[64]);
  h.header_length = kV2HeaderLength;
  if (h.cluster_bits < kMinClusterBits || h.cluster_bits > kMaxClusterBits) {
    return Fail("cluster size 2^{} is out of range (512 B to 2 MiB)", h.cluster_bits);
  }
  const uint32_t cs = h.cluster_size();
  if (h.version == 3) {
    if (b.size() < kV3HeaderLength - 8) return Fail("qcow2 v3 header is truncated");
    h.incompatible_features = LoadBe64(&b[72]);
    h.compatible_features = LoadBe64(&b[80]);
    h.autoclear_features = LoadBe64(&b[88]);
    h.refcount_order = LoadBe32(&b[96]);
    h.header_length = LoadBe32(&b[100]);
    if (h.header_length < kV3HeaderLength - 8 || h.header_length > cs ||
        h.header_length > b.size()) {
      return Fail("qcow2 header length {} is invalid", h.header_length);
    }
    if (h.header_length > kV3HeaderLength - 8) {
      uint8_t type = b[104];
      if (type > 1) return Fail("compression type {} is unknown (known: 0 zlib, 1 zstd)", type);
      if (type != 0 && !(h.incompatible_features & kIncompatCompressionType)) {
        return Fail("compression type is set without the compression type feature bit");
      }
      h.compression_type = static_cast<CompressionType>(type);
    }
  }
  if (h.refcount_order > 6) {
    return Fail("refcount width 2^{} bits is invalid (at most 64 bits)", h.refcount_order);
  }
  VIREO_TRY_STATUS(ParseExtensions(h, b, h.header_length));

  // Incompatible features: refuse what we cannot honour, naming it.
  const uint64_t known = kIncompatDirty | kIncompatCorrupt | kIncompatCompressionType;
  if (h.incompatible_features & kIncompatExternalData) {
    return Fail("the image uses an external data file, which Vireo does not support");
  }
  if (h.incompatible_features & kIncompatExtendedL2) {
    return Fail("the image uses extended L2 entries (subclusters), which Vireo does not support");
  }
  if (uint64_t unknown = h.incompatible_features & ~known) {
    std::string names;
    for (uint8_t bit = 0; bit < 64; ++bit) {
      if (unknown & (1ull << bit)) {
        names += fmt::format("{}{}", names.empty() ? "" : ", ", FeatureLabel(h, 0, bit));
      }
    }
    return Fail("the image uses unknown incompatible feature {}; Vireo cannot open it", names);
  }
  if (h.crypt_method != 0) {
    return Fail(
        "the image is encrypted (method {}), which Vireo does not support; decrypt it with "
        "`qemu-img convert`",
        h.crypt_method);
  }

  // Offsets and sizes.
  if (h.size > kMaxDiskSize) return Fail("disk size {} bytes is too large", h.size);
  if (h.l1_size < h.L1EntriesFor(h.size)) {
    return Fail("L1 table ({} entries) is too small for a {}-byte disk", h.l1_size, h.size);
  }
  const uint64_t l1_bytes = uint64_t{h.l1_size} * 8;
  if (l1_bytes > kMaxL1Bytes) return Fail("L1 table of {} entries is too large", h.l1_size);
  if (l1_bytes > 0) {
    if (!Aligned(h.l1_table_offset, cs) || h.l1_table_offset == 0) {
      return Fail("L1 table offset {:#x} is not cluster-aligned or overlaps the header",
                  h.l1_table_offset);
    }
    if (!InFile(h.l1_table_offset, l1_bytes, file_size)) {
      return Fail("L1 table at {:#x} lies past the end of the file", h.l1_table_offset);
    }
  }
  const uint64_t rt_bytes = uint64_t{h.refcount_table_clusters} * cs;
  if (h.refcount_table_clusters == 0 || rt_bytes > kMaxRefcountTableBytes) {
    return Fail("refcount table size of {} clusters is invalid", h.refcount_table_clusters);
  }
  if (!Aligned(h.refcount_table_offset, cs) || h.refcount_table_offset == 0) {
    return Fail("refcount table offset {:#x} is not cluster-aligned or overlaps the header",
                h.refcount_table_offset);
  }
  if (!InFile(h.refcount_table_offset, rt_bytes, file_size)) {
    return Fail("refcount table at {:#x} lies past the end of the file", h.refcount_table_offset);
  }
  if (Overlaps(h.refcount_table_offset, rt_bytes, h.l1_table_offset, l1_bytes)) {
    return Fail("refcount table at {:#x} overlaps the L1 table at {:#x}", h.refcount_table_offset,
                h.l1_table_offset);
  }
  if (h.nb_snapshots > kMaxSnapshots) return Fail("{} snapshots is too many", h.nb_snapshots);
  if (h.nb_snapshots > 0 && (!Aligned(h.snapshots_offset, cs) || h.snapshots_offset == 0 ||
                             !InFile(h.snapshots_offset, 40ull * h.nb_snapshots, file_size))) {
    return Fail("snapshot table at {:#x} is misaligned or lies past the end of the file",
                h.snapshots_offset);
  }
  if (h.backing_file_offset != 0) {
    if (h.backing_file_size == 0 || h.backing_file_size > kMaxBackingFileName ||
        h.backing_file_offset > cs || h.backing_file_size > cs - h.backing_file_offset ||
        h.backing_file_offset + h.backing_file_size > b.size()) {
      return Fail("backing file name ({} bytes at {:#x}) lies outside the header cluster",
                  h.backing_file_size, h.backing_file_offset);
    }
    h.backing_file.assign(reinterpret_cast<const char*>(&b[h.backing_file_offset]),
                          h.backing_file_size);
  }
  return h;
}

Result<std::vector<uint8_t>> SerializeHeader(const Header& h) {
  const uint32_t cs = h.cluster_size();
  std::vector<uint8_t> b(cs, 0);
  uint8_t* p = b.data();
  StoreBe32(p, kMagic);
  StoreBe32(p + 4, h.version);
  StoreBe32(p + 20, h.cluster_bits);
  StoreBe64(p + 24, h.size);
  StoreBe32(p + 32, h.crypt_method);
  StoreBe32(p + 36, h.l1_size);
  StoreBe64(p + 40, h.l1_table_offset);
  StoreBe64(p + 48, h.refcount_table_offset);
  StoreBe32(p + 56, h.refcount_table_clusters);
  StoreBe32(p + 60, h.nb_snapshots);
  StoreBe64(p + 64, h.snapshots_offset);
  uint64_t pos = kV2HeaderLength;
  if (h.version == 3) {
    StoreBe64(p + 72, h.incompatible_features);
    StoreBe64(p + 80, h.compatible_features);
    StoreBe64(p + 88, h.autoclear_features);
    StoreBe32(p + 96, h.refcount_order);
    StoreBe32(p + 100, kV3HeaderLength);
    p[104] = static_cast<uint8_t>(h.compression_type);
    pos = kV3HeaderLength;
  }
  auto put_extension = [&](uint32_t type, std::span<const uint8_t> data) -> Status {
    const uint64_t padded = (data.size() + 7) & ~7ull;
    if (pos + 8 + padded + 8 > cs) return Fail("qcow2 header extensions do not fit one cluster");
    StoreBe32(p + pos, type);
    StoreBe32(p + pos + 4, static_cast<uint32_t>(data.size()));
    std::copy(data.begin(), data.end(), p + pos + 8);
    pos += 8 + padded;
    return {};
  };
  if (!h.backing_format.empty()) {
    VIREO_TRY_STATUS(put_extension(
        kExtBackingFormat, std::span(reinterpret_cast<const uint8_t*>(h.backing_format.data()),
                                     h.backing_format.size())));
  }
  if (h.version == 3) {
    std::vector<uint8_t> table;
    for (const FeatureName& f : KnownFeatureNames()) {
      uint8_t entry[48] = {f.type, f.bit};
      std::copy(f.name.begin(), f.name.end(), entry + 2);
      table.insert(table.end(), entry, entry + 48);
    }
    VIREO_TRY_STATUS(put_extension(kExtFeatureNames, table));
  }
  for (const HeaderExtension& e : h.other_extensions) {
    VIREO_TRY_STATUS(put_extension(e.type, e.data));
  }
  pos += 8;  // The end-of-extensions marker: type 0, length 0 (already zero).
  if (!h.backing_file.empty()) {
    if (h.backing_file.size() > kMaxBackingFileName || pos + h.backing_file.size() > cs) {
      return Fail("backing file name '{}' does not fit in the header", h.backing_file);
    }
    StoreBe64(p + 8, pos);
    StoreBe32(p + 16, static_cast<uint32_t>(h.backing_file.size()));
    std::copy(h.backing_file.begin(), h.backing_file.end(), p + pos);
  }
  return b;
}

}  // namespace vireo::block::qcow2
