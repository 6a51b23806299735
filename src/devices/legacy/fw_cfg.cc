#include "devices/legacy/fw_cfg.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "base/bytes.h"

namespace vireo {
namespace {

constexpr uint16_t kArchLocal = 0x8000;     // selector bit 15
constexpr uint16_t kWriteChannel = 0x4000;  // selector bit 14
constexpr uint32_t kIdTraditional = 0x1;    // FW_CFG_ID bit 0; bit 1 (DMA) stays clear

template <typename T>
std::vector<uint8_t> LittleEndian(T value) {
  std::vector<uint8_t> bytes(sizeof(T));
  StoreLe<T>(bytes, 0, value);
  return bytes;
}

void PushBigEndian(std::vector<uint8_t>& out, uint64_t value, size_t width) {
  for (size_t i = width; i-- > 0;) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

}  // namespace

std::vector<uint8_t> BuildE820File(std::span<const FwCfgE820Entry> entries) {
  std::vector<uint8_t> bytes(entries.size() * kFwCfgE820EntrySize);
  for (size_t i = 0; i < entries.size(); ++i) {
    const size_t at = i * kFwCfgE820EntrySize;
    StoreLe<uint64_t>(bytes, at, entries[i].addr);
    StoreLe<uint64_t>(bytes, at + 8, entries[i].size);
    StoreLe<uint32_t>(bytes, at + 16, entries[i].type);
  }
  return bytes;
}

FwCfg::FwCfg(const FwCfgConfig& config) {
  fixed_[kSignature] = {'Q', 'E', 'M', 'U'};
  fixed_[kId] = LittleEndian<uint32_t>(kIdTraditional);
  fixed_[kRamSize] = LittleEndian<uint64_t>(config.ram_size);
  fixed_[kNbCpus] = LittleEndian<uint16_t>(config.nb_cpus);
  fixed_[kMaxCpus] = LittleEndian<uint16_t>(config.max_cpus);
  // QEMU's CMDLINE_SIZE counts the terminating NUL, and CMDLINE_DATA includes it.
  const uint32_t cmdline_size =
      config.cmdline.empty() ? 0 : static_cast<uint32_t>(config.cmdline.size() + 1);
  fixed_[kCmdlineSize] = LittleEndian<uint32_t>(cmdline_size);
  if (!config.cmdline.empty()) {
    fixed_[kCmdlineData].assign(config.cmdline.begin(), config.cmdline.end());
    fixed_[kCmdlineData].push_back(0);
  }
  RebuildFileDir();
}

Status FwCfg::AddFile(std::string name, std::vector<uint8_t> data) {
  if (name.empty() || name.size() >= kFileNameSize) {
    return Fail("fw_cfg file name '{}' must be 1 to {} bytes", name, kFileNameSize - 1);
  }
  if (name.find('\0') != std::string::npos) {
    return Fail("fw_cfg file name '{}' contains a NUL byte", name);
  }
  if (data.size() > std::numeric_limits<uint32_t>::max()) {
    return Fail("fw_cfg file '{}' is {} bytes; the limit is 4 GiB - 1", name, data.size());
  }
  std::lock_guard lock(mu_);
  if (files_.size() >= kMaxFiles) {
    return Fail("fw_cfg holds at most {} files; '{}' is one too many", kMaxFiles, name);
  }
  for (const File& file : files_) {
    if (file.name == name) return Fail("fw_cfg file '{}' is already present", name);
  }
  files_.push_back({std::move(name), std::move(data)});
  RebuildFileDir();
  return {};
}

// "File Directory": u32 BE count, then per file {u32 BE size, u16 BE select, u16 reserved,
// char name[56]}, 64 bytes each.
void FwCfg::RebuildFileDir() {
  std::vector<uint8_t>& dir = fixed_[kFileDir];
  dir.clear();
  dir.reserve(4 + files_.size() * kFileDirEntrySize);
  PushBigEndian(dir, files_.size(), 4);
  for (size_t i = 0; i < files_.size(); ++i) {
    PushBigEndian(dir, files_[i].data.size(), 4);
    PushBigEndian(dir, kFileFirst + i, 2);
    PushBigEndian(dir, 0, 2);
    const std::string& name = files_[i].name;
    dir.insert(dir.end(), name.begin(), name.end());
    dir.resize(dir.size() + kFileNameSize - name.size(), 0);
  }
}

bool FwCfg::KeyExists(uint16_t key) const {
  if (key & kArchLocal) return false;  // no architecture-local items
  const uint16_t index = key & ~kWriteChannel;
  if (index < kFileFirst) return index == kCmdlineData || !fixed_[index].empty();
  return static_cast<size_t>(index - kFileFirst) < files_.size();
}

std::span<const uint8_t> FwCfg::Selected() const {
  if (!KeyExists(selector_)) return {};
  const uint16_t index = selector_ & ~kWriteChannel;
  if (index < kFileFirst) return fixed_[index];
  return files_[index - kFileFirst].data;
}

void FwCfg::Read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  if (offset != 1) {
    // The selector register is write-only; reads see 0 as in QEMU.
    std::fill(data.begin(), data.end(), 0);
    return;
  }
  // "Data Register": an N-byte read returns the next N bytes; past the end, 0x00.
  const std::span<const uint8_t> item = Selected();
  for (auto& byte : data) {
    byte = offset_ < item.size() ? item[offset_] : 0;
    if (offset_ < item.size()) ++offset_;
  }
}

void FwCfg::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset != 0 || data.empty()) return;  // data-register writes are ignored
  std::lock_guard lock(mu_);
  // Selector: 16-bit little-endian; a byte write is taken as the low byte of zero.
  selector_ = data.size() >= 2 ? LoadLe<uint16_t>(data) : data[0];
  offset_ = 0;
  if (!KeyExists(selector_)) ++unknown_selects_;
}

uint64_t FwCfg::unknown_selects() const {
  std::lock_guard lock(mu_);
  return unknown_selects_;
}

}  // namespace vireo
