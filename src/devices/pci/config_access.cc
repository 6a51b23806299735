#include "devices/pci/config_access.h"

#include <algorithm>

#include "base/bytes.h"

namespace vireo::pci {
namespace {

struct Target {
  int device;
  int function;
  uint64_t offset;
};

// CONFIG_ADDRESS decoded for an access at CONFIG_DATA + `data_offset` (0-3). Bus 0 is the
// only bus; any other reads as a master abort, like an empty slot.
bool DecodeConfigAddress(uint32_t address, uint64_t data_offset, Target& target) {
  if (!(address & PciConfigIo::kEnable)) return false;  // not a config cycle: open bus
  if (((address >> 16) & 0xff) != 0) return false;
  target.device = static_cast<int>((address >> 11) & 0x1f);
  target.function = static_cast<int>((address >> 8) & 0x7);
  target.offset = (address & 0xfc) + data_offset;
  return true;
}

}  // namespace

void PciConfigIo::Read(uint64_t offset, std::span<uint8_t> data) {
  if (offset == kConfigAddress && data.size() == 4) {
    StoreLe(data, 0, config_address());
    return;
  }
  if (offset == kResetControl && data.size() == 1 && port_cf9_) {
    port_cf9_->Read(0, data);
    return;
  }
  Target target;
  if (offset >= kConfigData && offset < kSize &&
      DecodeConfigAddress(config_address(), offset - kConfigData, target)) {
    bus_.ConfigRead(target.device, target.function, target.offset, data);  // checks the width
    return;
  }
  std::fill(data.begin(), data.end(), 0xff);
}

void PciConfigIo::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset == kConfigAddress && data.size() == 4) {
    set_config_address(LoadLe<uint32_t>(data));
    return;
  }
  if (offset == kResetControl && data.size() == 1 && port_cf9_) {
    port_cf9_->Write(0, data);
    return;
  }
  Target target;
  if (offset >= kConfigData && offset < kSize &&
      DecodeConfigAddress(config_address(), offset - kConfigData, target)) {
    bus_.ConfigWrite(target.device, target.function, target.offset, data);
  }
}

void PciEcam::Read(uint64_t offset, std::span<uint8_t> data) {
  if ((offset >> kBusShift) != 0) {
    std::fill(data.begin(), data.end(), 0xff);
    return;
  }
  bus_.ConfigRead(static_cast<int>((offset >> kDeviceShift) & 0x1f),
                  static_cast<int>((offset >> kFunctionShift) & 0x7), offset & kRegisterMask, data);
}

void PciEcam::Write(uint64_t offset, std::span<const uint8_t> data) {
  if ((offset >> kBusShift) != 0) return;
  bus_.ConfigWrite(static_cast<int>((offset >> kDeviceShift) & 0x1f),
                   static_cast<int>((offset >> kFunctionShift) & 0x7), offset & kRegisterMask,
                   data);
}

}  // namespace vireo::pci
