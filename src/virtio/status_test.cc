#include "virtio/status.h"

#include <gtest/gtest.h>

namespace vireo::virtio {
namespace {

using R = DeviceStatus::WriteResult;
constexpr uint8_t kAck = DeviceStatus::kAcknowledge;
constexpr uint8_t kDrv = DeviceStatus::kDriver;
constexpr uint8_t kFok = DeviceStatus::kFeaturesOk;
constexpr uint8_t kDok = DeviceStatus::kDriverOk;

TEST(DeviceStatusTest, DriverInitSequence) {
  DeviceStatus status;
  EXPECT_FALSE(status.AcceptNotification());
  EXPECT_EQ(status.Write(kAck, false), R::kAccepted);
  EXPECT_EQ(status.Write(kAck | kDrv, false), R::kAccepted);
  EXPECT_EQ(status.Write(kAck | kDrv | kFok, true), R::kAccepted);
  EXPECT_TRUE(status.features_ok());
  EXPECT_FALSE(status.AcceptNotification());
  EXPECT_EQ(status.Write(kAck | kDrv | kFok | kDok, true), R::kDriverOk);
  EXPECT_TRUE(status.driver_ok());
  EXPECT_TRUE(status.AcceptNotification());
  EXPECT_EQ(status.Write(kAck | kDrv | kFok | kDok, true), R::kAccepted);  // rewrite: no-op
  EXPECT_EQ(status.early_notifications(), 2u);
  EXPECT_EQ(status.refused_writes(), 0u);
}

TEST(DeviceStatusTest, OutOfOrderWritesAreRefused) {
  DeviceStatus status;
  EXPECT_EQ(status.Write(kDrv, true), R::kRefused);                // DRIVER before ACKNOWLEDGE
  EXPECT_EQ(status.Write(kAck | kFok, true), R::kRefused);         // FEATURES_OK before DRIVER
  EXPECT_EQ(status.Write(kAck | kDrv | kDok, true), R::kRefused);  // DRIVER_OK too early
  EXPECT_EQ(status.Write(kAck | kDrv | kFok | kDok, true), R::kRefused);  // not re-read
  EXPECT_EQ(status.Write(0x10, true), R::kRefused);                       // reserved bit
  EXPECT_EQ(status.value(), 0);
  EXPECT_EQ(status.Write(kAck | kDrv, true), R::kAccepted);
  EXPECT_EQ(status.Write(kAck, true), R::kRefused);  // clearing DRIVER
  EXPECT_EQ(status.value(), kAck | kDrv);
  EXPECT_EQ(status.refused_writes(), 6u);
}

TEST(DeviceStatusTest, FeaturesOkDoesNotStickWhenFeaturesAreUnacceptable) {
  DeviceStatus status;
  status.Write(kAck | kDrv, true);
  EXPECT_EQ(status.Write(kAck | kDrv | kFok, false), R::kFeaturesRejected);
  EXPECT_EQ(status.value(), kAck | kDrv);
  EXPECT_EQ(status.Write(kAck | kDrv | kFok | kDok, true), R::kRefused);
  EXPECT_FALSE(status.driver_ok());
}

TEST(DeviceStatusTest, EarlyStepsMayArriveTogether) {
  DeviceStatus status;
  EXPECT_EQ(status.Write(kAck | kDrv | kFok, true), R::kAccepted);
  EXPECT_EQ(status.Write(kAck | kDrv | kFok | kDok, true), R::kDriverOk);
}

TEST(DeviceStatusTest, ZeroResetsAndFailedIsAlwaysAllowed) {
  DeviceStatus status;
  status.Write(kAck, true);
  EXPECT_EQ(status.Write(kAck | DeviceStatus::kFailed, true), R::kAccepted);
  EXPECT_TRUE(status.Has(DeviceStatus::kFailed));
  EXPECT_EQ(status.Write(0, true), R::kReset);
  EXPECT_EQ(status.value(), 0);
}

TEST(DeviceStatusTest, NeedsResetIsTheDevicesBit) {
  DeviceStatus status;
  status.Write(kAck | kDrv | kFok, true);
  status.Write(kAck | kDrv | kFok | kDok, true);
  status.SetNeedsReset();
  EXPECT_TRUE(status.Has(DeviceStatus::kDeviceNeedsReset));
  // A driver writing back what it read (or not) does not clear it.
  EXPECT_EQ(status.Write(status.value(), true), R::kAccepted);
  EXPECT_EQ(status.Write(kAck | kDrv | kFok | kDok, true), R::kAccepted);
  EXPECT_TRUE(status.Has(DeviceStatus::kDeviceNeedsReset));
  status.Write(0, true);
  EXPECT_FALSE(status.Has(DeviceStatus::kDeviceNeedsReset));
}

}  // namespace
}  // namespace vireo::virtio
