// The device status field and its state machine (virtio 1.2, 2.1 "Device Status Field"
// and 3.1.1 "Driver Requirements: Device Initialization").
//
// The driver sets bits in order: ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK (the first
// three may arrive together; DRIVER_OK needs FEATURES_OK accepted earlier). Writing 0
// resets the device. FAILED may be set at any time. DEVICE_NEEDS_RESET is the device's to
// set. A write that clears a bit, skips a step, or sets FEATURES_OK with features the
// device cannot accept leaves the status unchanged (FEATURES_OK simply does not stick, so
// the driver's re-read sees it clear, 3.1.1 step 6) and is counted.
#pragma once

#include <cstdint>

#include "base/result.h"

namespace vireo::virtio {

class DeviceStatus {
 public:
  // 2.1: status bits.
  static constexpr uint8_t kAcknowledge = 1;
  static constexpr uint8_t kDriver = 2;
  static constexpr uint8_t kDriverOk = 4;
  static constexpr uint8_t kFeaturesOk = 8;
  static constexpr uint8_t kDeviceNeedsReset = 64;
  static constexpr uint8_t kFailed = 128;

  enum class WriteResult {
    kAccepted,          // stored (possibly a no-op rewrite)
    kReset,             // 0 written: the caller resets the device
    kDriverOk,          // DRIVER_OK newly set: the caller activates the device
    kFeaturesRejected,  // FEATURES_OK refused because the features are unacceptable
    kRefused,           // out of order or clears a bit: unchanged
  };

  // Applies a driver write. `features_acceptable` says whether the driver's feature
  // selection may be accepted (consulted only when FEATURES_OK is newly set).
  WriteResult Write(uint8_t value, bool features_acceptable);

  // The device asks for a reset (2.1.2); stays set until the driver writes 0.
  void SetNeedsReset() { value_ |= kDeviceNeedsReset; }
  void Reset() { value_ = 0; }

  uint8_t value() const { return value_; }
  bool Has(uint8_t bit) const { return (value_ & bit) != 0; }
  bool driver_ok() const { return Has(kDriverOk) && !Has(kFailed); }
  bool features_ok() const { return Has(kFeaturesOk); }

  // Notifications are processed only once the driver is ready (3.1.1 step 8; 2.1.2:
  // the device MUST NOT consume buffers or send notifications before DRIVER_OK).
  // Returns false, and counts, when one arrives early.
  bool AcceptNotification();

  // Snapshot restore: `value` must be a status a driver could have reached (known bits, each
  // step's predecessors set); else nothing changes and the error names it.
  Status Restore(uint8_t value);

  uint64_t refused_writes() const { return refused_writes_; }
  uint64_t early_notifications() const { return early_notifications_; }

 private:
  uint8_t value_ = 0;
  uint64_t refused_writes_ = 0;
  uint64_t early_notifications_ = 0;
};

}  // namespace vireo::virtio
