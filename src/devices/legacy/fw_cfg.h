// QEMU's firmware configuration device (fw_cfg), traditional I/O-port interface only, as
// specified in QEMU's docs/specs/fw_cfg.rst ("Guest-side Hardware Interface"):
//   0x510  selector register, 16-bit little-endian write ("Selector (Control) Register")
//   0x511  data register, 8-bit reads of the selected item ("Data Register")
// Registered as one device at 0x510, size 2. No DMA interface (FW_CFG_ID bit 1 clear), so
// nothing here touches guest memory.
//
// Items: signature, ID, RAM size, CPU counts, kernel command line, the file directory and
// any files added with AddFile (selectors from 0x0020, "File Directory" section). Selecting
// a key with no item, or an architecture-local key (bit 15), reads zeros; bit 14 (the write
// channel) is ignored, since data-register writes are no-ops as in QEMU 2.4 and later.
//
// Items are built at set-up (AddFile allocates); a guest access only moves an offset.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "devices/bus_device.h"

namespace vireo {

struct FwCfgConfig {
  uint64_t ram_size = 0;
  uint16_t nb_cpus = 1;
  uint16_t max_cpus = 1;
  std::string cmdline;  // may be empty: then CMDLINE_SIZE reads 0 and CMDLINE_DATA is empty
};

// One "etc/e820" record. QEMU's layout (struct e820_entry in hw/i386/e820_memory_layout.h):
// u64 address, u64 length, u32 type, little-endian, packed to 20 bytes.
struct FwCfgE820Entry {
  uint64_t addr;
  uint64_t size;
  uint32_t type;  // 1 RAM, 2 reserved, 3 ACPI, 4 NVS
};
inline constexpr size_t kFwCfgE820EntrySize = 20;

// The bytes of an "etc/e820" file for `entries`.
std::vector<uint8_t> BuildE820File(std::span<const FwCfgE820Entry> entries);

class FwCfg : public BusDevice {
 public:
  static constexpr uint64_t kBase = 0x510;
  static constexpr uint64_t kSize = 2;
  // Selector keys (fw_cfg.rst; the rest from QEMU's include/standard-headers/linux/qemu_fw_cfg.h).
  static constexpr uint16_t kSignature = 0x0000;
  static constexpr uint16_t kId = 0x0001;
  static constexpr uint16_t kRamSize = 0x0003;
  static constexpr uint16_t kNbCpus = 0x0005;
  static constexpr uint16_t kMaxCpus = 0x000f;
  static constexpr uint16_t kCmdlineSize = 0x0014;
  static constexpr uint16_t kCmdlineData = 0x0015;
  static constexpr uint16_t kFileDir = 0x0019;
  static constexpr uint16_t kFileFirst = 0x0020;
  // "File Directory": names are NUL-terminated in 56 bytes, so at most 55 characters.
  static constexpr size_t kFileNameSize = 56;
  static constexpr size_t kFileDirEntrySize = 64;
  static constexpr size_t kMaxFiles = 1024;  // a VMM-chosen bound, well inside 0x20-0x3fff

  explicit FwCfg(const FwCfgConfig& config);

  // Set-up only. Fails for an empty, too long or duplicate name, a name with a NUL, data
  // over 4 GiB - 1 (the directory's size field is 32 bits) or more than kMaxFiles files.
  Status AddFile(std::string name, std::vector<uint8_t> data);

  std::string_view name() const override { return "fw-cfg"; }
  void Read(uint64_t offset, std::span<uint8_t> data) override;
  void Write(uint64_t offset, std::span<const uint8_t> data) override;

  // Guest selections of keys that have no item: not an error, but worth seeing.
  uint64_t unknown_selects() const;

 private:
  struct File {
    std::string name;
    std::vector<uint8_t> data;
  };

  // The selected item's bytes, or an empty span. Caller holds mu_.
  std::span<const uint8_t> Selected() const;
  bool KeyExists(uint16_t key) const;
  void RebuildFileDir();

  mutable std::mutex mu_;
  // Guarded by mu_.
  std::array<std::vector<uint8_t>, kFileFirst> fixed_;  // items 0x0000-0x001f, by key
  std::vector<File> files_;                             // files_[i] has key kFileFirst + i
  uint16_t selector_ = kSignature;
  uint64_t offset_ = 0;  // data offset into the selected item
  uint64_t unknown_selects_ = 0;
};

}  // namespace vireo
