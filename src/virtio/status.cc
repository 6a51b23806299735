#include "virtio/status.h"

namespace vireo::virtio {

DeviceStatus::WriteResult DeviceStatus::Write(uint8_t value, bool features_acceptable) {
  if (value == 0) {
    value_ = 0;
    return WriteResult::kReset;
  }
  // DEVICE_NEEDS_RESET belongs to the device: a driver writing back what it read keeps it.
  uint8_t driver_bits = value_ & ~kDeviceNeedsReset;
  uint8_t wanted = value & ~kDeviceNeedsReset;
  auto refuse = [this] {
    refused_writes_++;
    return WriteResult::kRefused;
  };
  if ((driver_bits & ~wanted) != 0) return refuse();  // only a write of 0 clears bits
  uint8_t added = wanted & ~driver_bits;
  if (added == 0) return WriteResult::kAccepted;
  if ((added & ~(kAcknowledge | kDriver | kFeaturesOk | kDriverOk | kFailed)) != 0) {
    return refuse();  // reserved bits
  }
  if ((wanted & kDriver) && !(wanted & kAcknowledge)) return refuse();
  if ((wanted & kFeaturesOk) && !(wanted & kDriver)) return refuse();
  // DRIVER_OK only after FEATURES_OK has been accepted by an earlier write, which the
  // driver re-read (3.1.1 steps 6 and 8).
  if ((added & kDriverOk) && !(driver_bits & kFeaturesOk)) return refuse();
  if ((added & kFeaturesOk) && !features_acceptable) {
    refused_writes_++;
    value_ = (value_ & kDeviceNeedsReset) | (wanted & ~(kFeaturesOk | kDriverOk));
    return WriteResult::kFeaturesRejected;
  }
  value_ = (value_ & kDeviceNeedsReset) | wanted;
  if ((added & kDriverOk) && !Has(kFailed)) return WriteResult::kDriverOk;
  return WriteResult::kAccepted;
}

Status DeviceStatus::Restore(uint8_t value) {
  constexpr uint8_t kKnown =
      kAcknowledge | kDriver | kFeaturesOk | kDriverOk | kDeviceNeedsReset | kFailed;
  const bool ordered = (!(value & kDriver) || (value & kAcknowledge)) &&
                       (!(value & kFeaturesOk) || (value & kDriver)) &&
                       (!(value & kDriverOk) || (value & kFeaturesOk));
  if ((value & ~kKnown) != 0 || !ordered) {
    return Fail("virtio device status {:#x} is not one a driver can reach (2.1, 3.1.1)", value);
  }
  value_ = value;
  return {};
}

bool DeviceStatus::AcceptNotification() {
  if (driver_ok()) return true;
  early_notifications_++;
  return false;
}

}  // namespace vireo::virtio
