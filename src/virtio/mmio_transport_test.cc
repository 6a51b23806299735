#include "virtio/mmio_transport.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "devices/testing/fakes.h"
#include "virtio/console.h"
#include "virtio/rng.h"
#include "virtio/testing/driver.h"

namespace vireo::virtio {
namespace {

using testing::MmioNegotiate;
using testing::MmioSetupQueue;
using testing::Read32;
using testing::TestBuffer;
using testing::TestDriver;
using testing::Write32;
using T = MmioTransport;

constexpr uint8_t kAck = DeviceStatus::kAcknowledge;
constexpr uint8_t kDrv = DeviceStatus::kDriver;
constexpr uint8_t kFok = DeviceStatus::kFeaturesOk;
constexpr uint8_t kDok = DeviceStatus::kDriverOk;
constexpr GuestAddress kData = 0x40000;

class MmioTransportTest : public ::testing::Test {
 protected:
  MmioTransportTest()
      : memory_(testing::MakeTestMemory()),
        rng_(std::make_shared<Rng>()),
        irq_(std::make_shared<vireo::testing::FakeInterruptLine>()),
        transport_(memory_, rng_, irq_),
        driver_(memory_, 16) {}

  // 3.1.1: the whole sequence, with `features`, up to DRIVER_OK.
  void BringUp(uint64_t features) {
    ASSERT_EQ(MmioNegotiate(transport_, features), kAck | kDrv | kFok);
    MmioSetupQueue(transport_, 0, driver_);
    ASSERT_EQ(Read32(transport_, T::kQueueReady), 1u);
    Write32(transport_, T::kStatus, kAck | kDrv | kFok | kDok);
    ASSERT_EQ(Read32(transport_, T::kStatus), kAck | kDrv | kFok | kDok);
  }
  size_t Pulses() const {
    size_t rising = 0;
    for (bool level : irq_->changes) rising += level;
    return rising;
  }

  GuestMemory memory_;
  std::shared_ptr<Rng> rng_;
  std::shared_ptr<vireo::testing::FakeInterruptLine> irq_;
  MmioTransport transport_;
  TestDriver driver_;
};

TEST_F(MmioTransportTest, IdentifiesAsVersion2EntropyDevice) {
  EXPECT_EQ(Read32(transport_, T::kMagicValue), 0x74726976u);
  EXPECT_EQ(Read32(transport_, T::kVersion), 2u);
  EXPECT_EQ(Read32(transport_, T::kDeviceId), 4u);
  EXPECT_EQ(Read32(transport_, T::kVendorId), 0x45524956u);
  EXPECT_EQ(Read32(transport_, T::kShmLenLow), 0xffffffffu);
  EXPECT_EQ(Read32(transport_, T::kShmLenHigh), 0xffffffffu);
  EXPECT_EQ(Read32(transport_, T::kConfigGeneration), 0u);
  EXPECT_EQ(transport_.name(), "virtio-mmio-rng");
}

TEST_F(MmioTransportTest, OffersFeaturesIn32BitWords) {
  Write32(transport_, T::kDeviceFeaturesSel, 0);
  EXPECT_EQ(Read32(transport_, T::kDeviceFeatures), (1u << 28) | (1u << 29));
  Write32(transport_, T::kDeviceFeaturesSel, 1);
  EXPECT_EQ(Read32(transport_, T::kDeviceFeatures), 1u);  // VERSION_1 is bit 32
  Write32(transport_, T::kDeviceFeaturesSel, 2);
  EXPECT_EQ(Read32(transport_, T::kDeviceFeatures), 0u);
}

TEST_F(MmioTransportTest, RngBringUpDeliversRandomBytes) {
  BringUp(kFVersion1);
  std::vector<uint8_t> zeros(256);
  memory_.Write(kData, zeros);
  uint16_t head = driver_.AddChain(std::vector<TestBuffer>{{kData, 256, true}});
  Write32(transport_, T::kQueueNotify, 0);

  auto used = driver_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 256u);
  std::vector<uint8_t> bytes(256);
  memory_.Read(kData, bytes);
  EXPECT_NE(bytes, zeros);

  // 4.2.3.4: InterruptStatus bit 0, the line pulsed once; InterruptACK clears it.
  EXPECT_EQ(Read32(transport_, T::kInterruptStatus), T::kInterruptUsedBuffer);
  EXPECT_EQ(irq_->changes, (std::vector<bool>{true, false}));
  Write32(transport_, T::kInterruptAck, T::kInterruptUsedBuffer);
  EXPECT_EQ(Read32(transport_, T::kInterruptStatus), 0u);
  EXPECT_EQ(transport_.counters().notifications, 1u);
}

TEST_F(MmioTransportTest, EventIdxSuppressesInterruptsUntilUsedEvent) {
  BringUp(kFVersion1 | kFEventIdx);
  driver_.SetUsedEvent(1);  // interrupt when used idx passes 1, i.e. at the second element
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  Write32(transport_, T::kQueueNotify, 0);
  EXPECT_EQ(Pulses(), 0u);
  EXPECT_EQ(Read32(transport_, T::kInterruptStatus), 0u);
  EXPECT_EQ(driver_.ReadAvailEvent(), 1);  // the device asks for a kick at the next buffer
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  Write32(transport_, T::kQueueNotify, 0);
  EXPECT_EQ(Pulses(), 1u);
  EXPECT_EQ(driver_.ReadUsedIdx(), 2);
}

TEST_F(MmioTransportTest, WithoutEventIdxNoInterruptFlagSuppresses) {
  BringUp(kFVersion1);
  driver_.SetAvailFlags(kAvailFNoInterrupt);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  Write32(transport_, T::kQueueNotify, 0);
  EXPECT_EQ(driver_.ReadUsedIdx(), 1);
  EXPECT_EQ(Pulses(), 0u);
  EXPECT_EQ(driver_.ReadAvailEvent(), 0);  // not written without EVENT_IDX
}

TEST_F(MmioTransportTest, IndirectChainsWorkWhenNegotiated) {
  BringUp(kFVersion1 | kFIndirectDesc);
  driver_.AddIndirectChain(0x50000,
                           std::vector<TestBuffer>{{kData, 8, true}, {kData + 64, 8, true}});
  Write32(transport_, T::kQueueNotify, 0);
  auto used = driver_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 16u);
}

TEST_F(MmioTransportTest, FeaturesOkRequiresVersion1) {
  EXPECT_EQ(MmioNegotiate(transport_, kFEventIdx), kAck | kDrv);
  EXPECT_GE(transport_.counters().refused_status, 1u);
  Write32(transport_, T::kStatus, kAck | kDrv | kFok | kDok);
  EXPECT_EQ(Read32(transport_, T::kStatus), kAck | kDrv);
}

TEST_F(MmioTransportTest, FeaturesOkRequiresSubsetOfOffered) {
  EXPECT_EQ(MmioNegotiate(transport_, kFVersion1 | (1ull << 5)), kAck | kDrv);
  EXPECT_EQ(MmioNegotiate(transport_, kFVersion1 | (1ull << 40)), kAck | kDrv);
  EXPECT_EQ(MmioNegotiate(transport_, kFVersion1), kAck | kDrv | kFok);
}

TEST_F(MmioTransportTest, DriverFeaturesAreFrozenAfterFeaturesOk) {
  MmioNegotiate(transport_, kFVersion1);
  Write32(transport_, T::kDriverFeaturesSel, 0);
  Write32(transport_, T::kDriverFeatures, 1u << 29);
  EXPECT_EQ(transport_.counters().refused_writes, 1u);
  MmioSetupQueue(transport_, 0, driver_);
  Write32(transport_, T::kStatus, kAck | kDrv | kFok | kDok);
  driver_.SetUsedEvent(5);  // would suppress if EVENT_IDX had been accepted
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  Write32(transport_, T::kQueueNotify, 0);
  EXPECT_EQ(Pulses(), 1u);
}

TEST_F(MmioTransportTest, NotificationsBeforeDriverOkAreIgnored) {
  MmioNegotiate(transport_, kFVersion1);
  MmioSetupQueue(transport_, 0, driver_);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  Write32(transport_, T::kQueueNotify, 0);
  EXPECT_EQ(driver_.ReadUsedIdx(), 0);
  EXPECT_EQ(transport_.counters().early_notifications, 1u);
  // DRIVER_OK activates the device, which then serves what is already available.
  Write32(transport_, T::kStatus, kAck | kDrv | kFok | kDok);
  EXPECT_EQ(driver_.ReadUsedIdx(), 1);
}

TEST_F(MmioTransportTest, NotifyOfMissingQueueIsCounted) {
  BringUp(kFVersion1);
  Write32(transport_, T::kQueueNotify, 1);
  Write32(transport_, T::kQueueNotify, 0xffffffff);
  EXPECT_EQ(transport_.counters().bad_notifications, 2u);
}

TEST_F(MmioTransportTest, NonWordRegisterAccessesAreIgnoredAndCounted) {
  uint8_t byte = 0xff;
  transport_.Read(T::kMagicValue, std::span(&byte, 1));
  EXPECT_EQ(byte, 0);
  uint16_t half = kAck;
  transport_.Write(T::kStatus, {reinterpret_cast<const uint8_t*>(&half), 2});
  EXPECT_EQ(Read32(transport_, T::kStatus), 0u);
  uint64_t wide = 0xffffffffffffffff;
  transport_.Read(T::kMagicValue, {reinterpret_cast<uint8_t*>(&wide), 8});
  EXPECT_EQ(wide, 0u);
  Write32(transport_, T::kStatus + 2, kAck);  // misaligned
  EXPECT_EQ(Read32(transport_, T::kStatus), 0u);
  EXPECT_EQ(transport_.counters().bad_access_size, 4u);
}

TEST_F(MmioTransportTest, UnknownAndWriteOnlyRegisters) {
  EXPECT_EQ(Read32(transport_, 0x0f0), 0u);
  EXPECT_EQ(Read32(transport_, T::kQueueNotify), 0u);
  Write32(transport_, T::kMagicValue, 1);
  EXPECT_EQ(Read32(transport_, T::kMagicValue), 0x74726976u);
  EXPECT_EQ(transport_.counters().bad_register, 3u);
}

TEST_F(MmioTransportTest, QueueSelBeyondQueues) {
  Write32(transport_, T::kQueueSel, 0);
  EXPECT_EQ(Read32(transport_, T::kQueueNumMax), Rng::kQueueSize);
  Write32(transport_, T::kQueueSel, 1);
  EXPECT_EQ(Read32(transport_, T::kQueueNumMax), 0u);
  Write32(transport_, T::kQueueNum, 16);
  Write32(transport_, T::kQueueReady, 1);
  EXPECT_EQ(Read32(transport_, T::kQueueReady), 0u);
  EXPECT_EQ(transport_.counters().refused_writes, 2u);
}

TEST_F(MmioTransportTest, InvalidQueueStaysUnreadyAndNeedsReset) {
  MmioNegotiate(transport_, kFVersion1);
  Write32(transport_, T::kQueueSel, 0);
  Write32(transport_, T::kQueueNum, 3);  // not a power of two
  Write32(transport_, T::kQueueReady, 1);
  EXPECT_EQ(Read32(transport_, T::kQueueReady), 0u);
  EXPECT_EQ(transport_.counters().invalid_queues, 1u);
  EXPECT_TRUE(Read32(transport_, T::kStatus) & DeviceStatus::kDeviceNeedsReset);
  EXPECT_EQ(Read32(transport_, T::kInterruptStatus), T::kInterruptConfigChange);
  EXPECT_EQ(Read32(transport_, T::kConfigGeneration), 1u);
  Write32(transport_, T::kQueueNum, 1u << 20);  // wider than 16 bits
  Write32(transport_, T::kQueueReady, 1);
  EXPECT_EQ(Read32(transport_, T::kQueueReady), 0u);
  // Rings outside RAM.
  TestDriver outside(memory_, 16, testing::kRegion0End - 0x4000);
  MmioSetupQueue(transport_, 0, outside);
  EXPECT_EQ(Read32(transport_, T::kQueueReady), 0u);
  EXPECT_EQ(transport_.counters().invalid_queues, 3u);
}

TEST_F(MmioTransportTest, QueueIsFrozenOnceReadyOrDriverOk) {
  BringUp(kFVersion1);
  Write32(transport_, T::kQueueNum, 4);
  Write32(transport_, T::kQueueReady, 0);
  Write32(transport_, T::kQueueDescLow, 0);
  EXPECT_EQ(Read32(transport_, T::kQueueReady), 1u);
  EXPECT_EQ(transport_.counters().refused_writes, 3u);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  Write32(transport_, T::kQueueNotify, 0);
  EXPECT_EQ(driver_.ReadUsedIdx(), 1);
}

TEST_F(MmioTransportTest, BrokenRingSetsNeedsResetAndSignalsConfigChange) {
  BringUp(kFVersion1);
  driver_.SetAvailIdx(1000);
  Write32(transport_, T::kQueueNotify, 0);
  EXPECT_TRUE(Read32(transport_, T::kStatus) & DeviceStatus::kDeviceNeedsReset);
  EXPECT_EQ(Read32(transport_, T::kInterruptStatus), T::kInterruptConfigChange);
  EXPECT_EQ(Pulses(), 1u);
  Write32(transport_, T::kStatus, 0);
  EXPECT_EQ(Read32(transport_, T::kStatus), 0u);
  EXPECT_FALSE(rng_->needs_reset());
}

TEST_F(MmioTransportTest, ResetReturnsEverythingToInitialState) {
  BringUp(kFVersion1 | kFEventIdx);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  Write32(transport_, T::kQueueNotify, 0);
  ASSERT_NE(Read32(transport_, T::kInterruptStatus), 0u);

  Write32(transport_, T::kStatus, 0);
  EXPECT_EQ(Read32(transport_, T::kStatus), 0u);
  EXPECT_EQ(Read32(transport_, T::kInterruptStatus), 0u);
  Write32(transport_, T::kQueueSel, 0);
  EXPECT_EQ(Read32(transport_, T::kQueueReady), 0u);
  Write32(transport_, T::kQueueNotify, 0);
  EXPECT_EQ(transport_.counters().early_notifications, 1u);

  // And it comes up again, on fresh rings, with indices from 0.
  TestDriver fresh(memory_, 32, 0x20000);
  ASSERT_EQ(MmioNegotiate(transport_, kFVersion1), kAck | kDrv | kFok);
  MmioSetupQueue(transport_, 0, fresh);
  Write32(transport_, T::kStatus, kAck | kDrv | kFok | kDok);
  fresh.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  Write32(transport_, T::kQueueNotify, 0);
  auto used = fresh.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 16u);
}

TEST_F(MmioTransportTest, OutOfOrderStatusIsRefused) {
  Write32(transport_, T::kStatus, kAck | kDrv | kFok | kDok);
  EXPECT_EQ(Read32(transport_, T::kStatus), 0u);
  Write32(transport_, T::kStatus, 0x1ff);
  EXPECT_EQ(Read32(transport_, T::kStatus), 0u);
  EXPECT_EQ(transport_.counters().refused_status, 1u);
  EXPECT_EQ(transport_.counters().refused_writes, 1u);
}

TEST(MmioConsoleTest, ConfigSpaceAtOffset0x100) {
  GuestMemory memory = testing::MakeTestMemory();
  auto irq = std::make_shared<vireo::testing::FakeInterruptLine>();
  auto console = std::make_shared<Console>([](std::span<const uint8_t>) {});
  MmioTransport transport(memory, console, irq);
  EXPECT_EQ(Read32(transport, T::kDeviceId), 3u);
  Write32(transport, T::kQueueSel, 1);
  EXPECT_EQ(Read32(transport, T::kQueueNumMax), Console::kQueueSize);
  uint16_t cols = 0xffff;
  transport.Read(T::kConfig, {reinterpret_cast<uint8_t*>(&cols), 2});
  EXPECT_EQ(cols, 0);
  uint8_t byte = 0xff;
  transport.Read(T::kConfig + 0x40, std::span(&byte, 1));
  EXPECT_EQ(byte, 0);
  transport.Write(T::kConfig, std::span<const uint8_t>(&byte, 1));
  EXPECT_EQ(transport.counters().bad_config_access, 2u);
}

TEST(MmioCmdlineTest, LinuxFormat) {
  EXPECT_EQ(MmioCmdlineParam(0xfe000000, 0x1000, 5), "virtio_mmio.device=4K@0xfe000000:5");
  EXPECT_EQ(MmioCmdlineParam(0xfe001000, 0x200, 12), "virtio_mmio.device=512@0xfe001000:12");
  EXPECT_EQ(MmioCmdlineParam(0x100000000, 2 << 20, 7), "virtio_mmio.device=2M@0x100000000:7");
}

}  // namespace
}  // namespace vireo::virtio
