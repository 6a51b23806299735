#include "block/qcow2/snapshot_table.h"

#include "block/qcow2/format.h"

namespace vireo::block::qcow2 {
namespace {
constexpr uint32_t kMaxExtraData = 1024;  // As QEMU.
}

Result<std::vector<SnapshotEntry>> ParseSnapshotTable(std::span<const uint8_t> b, uint32_t nb,
                                                      uint32_t cluster_size, uint64_t file_size) {
  std::vector<SnapshotEntry> entries;
  size_t pos = 0;
  for (uint32_t i = 0; i < nb; ++i) {
    if (b.size() - pos < 40)
      return Fail("snapshot table entry {} lies past the end of the file", i);
    const uint8_t* p = &b[pos];
    SnapshotEntry e;
    e.l1_table_offset = LoadBe64(p);
    e.l1_size = LoadBe32(p + 8);
    const uint16_t id_size = LoadBe16(p + 12);
    const uint16_t name_size = LoadBe16(p + 14);
    e.date_sec = LoadBe32(p + 16);
    e.date_nsec = LoadBe32(p + 20);
    e.vm_clock_nsec = LoadBe64(p + 24);
    e.vm_state_size = LoadBe32(p + 32);
    const uint32_t extra_size = LoadBe32(p + 36);
    if (extra_size > kMaxExtraData) return Fail("snapshot {} has too much extra data", i);
    const uint64_t length = 40ull + extra_size + id_size + name_size;
    if (b.size() - pos < length)
      return Fail("snapshot table entry {} lies past the end of the file", i);
    e.extra.assign(p + 40, p + 40 + extra_size);
    if (extra_size >= 8) e.vm_state_size = LoadBe64(p + 40);
    if (extra_size >= 16) e.disk_size = LoadBe64(p + 48);
    e.id.assign(reinterpret_cast<const char*>(p + 40 + extra_size), id_size);
    e.name.assign(reinterpret_cast<const char*>(p + 40 + extra_size + id_size), name_size);
    const uint64_t l1_bytes = uint64_t{e.l1_size} * 8;
    if (l1_bytes > kMaxL1Bytes || (e.l1_table_offset & (cluster_size - 1)) != 0 ||
        (l1_bytes > 0 && (e.l1_table_offset == 0 || e.l1_table_offset > file_size ||
                          l1_bytes > file_size - e.l1_table_offset))) {
      return Fail("snapshot '{}' has an invalid L1 table ({} entries at {:#x})", e.name, e.l1_size,
                  e.l1_table_offset);
    }
    pos += (length + 7) & ~7ull;
    entries.push_back(std::move(e));
    if (pos > b.size()) pos = b.size();
  }
  return entries;
}

std::vector<uint8_t> SerializeSnapshotTable(const std::vector<SnapshotEntry>& entries) {
  std::vector<uint8_t> out;
  for (const SnapshotEntry& e : entries) {
    std::vector<uint8_t> extra = e.extra;
    if (extra.size() < 16) extra.resize(16, 0);
    StoreBe64(extra.data(), e.vm_state_size);
    StoreBe64(extra.data() + 8, e.disk_size);
    const size_t start = out.size();
    const size_t length = 40 + extra.size() + e.id.size() + e.name.size();
    out.resize(start + ((length + 7) & ~size_t{7}), 0);
    uint8_t* p = &out[start];
    StoreBe64(p, e.l1_table_offset);
    StoreBe32(p + 8, e.l1_size);
    StoreBe16(p + 12, static_cast<uint16_t>(e.id.size()));
    StoreBe16(p + 14, static_cast<uint16_t>(e.name.size()));
    StoreBe32(p + 16, e.date_sec);
    StoreBe32(p + 20, e.date_nsec);
    StoreBe64(p + 24, e.vm_clock_nsec);
    StoreBe32(p + 32, static_cast<uint32_t>(std::min<uint64_t>(e.vm_state_size, 0xffffffffu)));
    StoreBe32(p + 36, static_cast<uint32_t>(extra.size()));
    std::copy(extra.begin(), extra.end(), p + 40);
    std::copy(e.id.begin(), e.id.end(), p + 40 + extra.size());
    std::copy(e.name.begin(), e.name.end(), p + 40 + extra.size() + e.id.size());
  }
  return out;
}

}  // namespace vireo::block::qcow2
