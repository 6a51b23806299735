// The state file's device records (format version 2 on; docs/snapshot-migration.md, "The
// state file", item 9): devices whose own state goes beyond registers the fixed layout
// holds. After the fixed fields comes a count, then per record a u16 kind and its payload
// (u32 length and bytes) in the fixed order its kind defines. A record of a kind this vireo
// does not know is refused by name, never skipped: a restore without it would not be
// faithful.
#pragma once

#include <cstdint>

#include "vmm/snapshot/state_codec.h"

namespace vireo::snapshot {

struct DeviceStates;

enum class RecordKind : uint16_t {
  kVirtioNet = 1,      // one per network device, in configuration order
  kVirtioBalloon = 2,  // at most one
  kVirtioVsock = 3,    // at most one
  kHpet = 4,           // at most one (--hpet on): irqchip::HpetState
};

void PutDeviceRecords(StateWriter& w, const DeviceStates& d);
// Bounds every count and length; the values are checked again by the devices' RestoreState.
void GetDeviceRecords(StateReader& r, DeviceStates& d);

}  // namespace vireo::snapshot
