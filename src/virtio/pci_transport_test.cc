// virtio-pci as Linux's virtio_pci_modern drives it: through a PciBus's configuration
// space and BAR routing, with MSI-X delivered to a fake sink (virtio 1.2, 4.1).
#include "virtio/pci_transport.h"

#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

#include "base/bytes.h"
#include "virtio/console.h"
#include "virtio/pci_common_cfg.h"
#include "virtio/rng.h"
#include "virtio/testing/driver.h"
#include "virtio/testing/pci_driver.h"

namespace vireo::virtio {
namespace {

namespace cc = common_cfg;
using testing::TestBuffer;
using testing::TestDriver;
using T = PciTransport;

constexpr uint8_t kAck = DeviceStatus::kAcknowledge;
constexpr uint8_t kDrv = DeviceStatus::kDriver;
constexpr uint8_t kFok = DeviceStatus::kFeaturesOk;
constexpr uint8_t kDok = DeviceStatus::kDriverOk;
constexpr uint8_t kNeedsReset = DeviceStatus::kDeviceNeedsReset;
constexpr GuestAddress kData = 0x40000;
constexpr uint64_t kMsiAddress = 0xfee00000;

class FakeMsiSink : public pci::MsiSink {
 public:
  void SendMsi(uint64_t address, uint32_t data) override { sent.emplace_back(address, data); }
  std::vector<std::pair<uint64_t, uint32_t>> sent;
};

using Move = std::tuple<uint16_t, std::optional<uint64_t>, std::optional<uint64_t>>;

class PciTransportTest : public ::testing::Test {
 protected:
  explicit PciTransportTest(std::shared_ptr<VirtioDevice> device = std::make_shared<Rng>())
      : memory_(testing::MakeTestMemory()),
        device_(std::move(device)),
        transport_(MakeTransport()),
        pci_(transport_),
        driver_(memory_, 16) {}

  // The listener is set before PciBus::AddDevice, so the first mapping is heard too.
  std::shared_ptr<PciTransport> MakeTransport() {
    auto transport = std::make_shared<PciTransport>(memory_, device_, sink_);
    transport->SetNotifyAddressListener(
        [this](uint16_t q, std::optional<uint64_t> from, std::optional<uint64_t> to) {
          moves_.emplace_back(q, from, to);
        });
    return transport;
  }
  uint32_t Cfg(uint16_t offset, size_t size) { return pci_.Cfg(offset, size); }
  void SetCfg(uint16_t offset, size_t size, uint32_t value) { pci_.SetCfg(offset, size, value); }
  uint64_t Bar(uint64_t offset, size_t size) { return pci_.Bar(offset, size); }
  void SetBar(uint64_t offset, size_t size, uint64_t value) { pci_.SetBar(offset, size, value); }
  uint8_t Status() { return pci_.Status(); }
  void SetStatus(uint8_t value) { pci_.SetStatus(value); }
  void EnableMsix() { ASSERT_TRUE(pci_.EnableMsix(kMsiAddress, 0x40)); }

  // 3.1.1 and 4.1.5.1.3 as Linux does them: MSI-X first, config vector 0, queue 0 on
  // vector 1, DRIVER_OK.
  void BringUp(uint64_t features = kFVersion1) {
    EnableMsix();
    ASSERT_EQ(pci_.Negotiate(features), kAck | kDrv | kFok);
    SetBar(cc::kMsixConfig, 2, 0);
    ASSERT_EQ(Bar(cc::kMsixConfig, 2), 0u);
    pci_.SetupQueue(0, driver_, 1);
    ASSERT_EQ(Bar(cc::kQueueEnable, 2), 1u);
    SetStatus(kAck | kDrv | kFok | kDok);
    ASSERT_EQ(Status(), kAck | kDrv | kFok | kDok);
  }

  FakeMsiSink sink_;
  std::vector<Move> moves_;
  GuestMemory memory_;
  std::shared_ptr<VirtioDevice> device_;
  std::shared_ptr<PciTransport> transport_;
  testing::PciTestDriver pci_;
  TestDriver driver_;
};

TEST_F(PciTransportTest, IdentifiesAsModernVirtioPciFunction) {
  EXPECT_EQ(Cfg(pci::reg::kVendorId, 2), 0x1af4u);
  EXPECT_EQ(Cfg(pci::reg::kDeviceId, 2), 0x1044u);  // 0x1040 + entropy (4)
  EXPECT_EQ(Cfg(pci::reg::kRevisionId, 1), 1u);
  EXPECT_EQ(Cfg(pci::reg::kSubsystemVendorId, 2), 0x1af4u);
  EXPECT_GE(Cfg(pci::reg::kSubsystemId, 2), 0x40u);
  EXPECT_EQ(Cfg(pci::reg::kClassCode + 2, 1), 0xffu);
  EXPECT_EQ(Cfg(pci::reg::kInterruptPin, 1), 0u) << "no INTx";
  EXPECT_TRUE(Cfg(pci::reg::kStatus, 2) & pci::status::kCapabilitiesList);
  EXPECT_EQ(Cfg(0x10 + 4 * T::kBar, 4) & 0xf, pci::bar_bits::kMemoryType64);
  EXPECT_EQ(transport_->name(), "virtio-pci-rng");
  EXPECT_EQ(transport_->bar_size(), 0x8000u);
  // §6.2.5.1 sizing: all ones, read back the size mask.
  SetCfg(pci::reg::kCommand, 2, 0);
  SetCfg(0x10 + 4 * T::kBar, 4, 0xffffffff);
  SetCfg(0x14 + 4 * T::kBar, 4, 0xffffffff);
  EXPECT_EQ(Cfg(0x10 + 4 * T::kBar, 4), 0xffff8004u);
  EXPECT_EQ(Cfg(0x14 + 4 * T::kBar, 4), 0xffffffffu);
  for (int bar : {0, 1, 2, 3}) EXPECT_EQ(transport_->bar_device(bar), nullptr);
}

TEST_F(PciTransportTest, CapabilityWalkFindsAllFiveVirtioCaps) {
  uint8_t msix = 0;
  auto caps = pci_.VirtioCaps(&msix);
  ASSERT_EQ(caps.size(), 5u);
  const testing::VirtioPciCap& common = caps[pci_cap::kCommonCfg];
  EXPECT_EQ(common.bar, T::kBar);
  EXPECT_EQ(common.offset, 0x0000u);
  EXPECT_EQ(common.length, 0x3cu);
  EXPECT_EQ(common.cap_len, 16);
  const testing::VirtioPciCap& notify = caps[pci_cap::kNotifyCfg];
  EXPECT_EQ(notify.bar, T::kBar);
  EXPECT_EQ(notify.offset, 0x3000u);
  EXPECT_EQ(notify.length, 4u);
  EXPECT_EQ(notify.cap_len, 20);
  EXPECT_EQ(notify.notify_off_multiplier, 4u);
  EXPECT_EQ(caps[pci_cap::kIsrCfg].bar, T::kBar);
  EXPECT_EQ(caps[pci_cap::kIsrCfg].offset, 0x1000u);
  EXPECT_EQ(caps[pci_cap::kIsrCfg].length, 1u);
  EXPECT_EQ(caps[pci_cap::kDeviceCfg].bar, T::kBar);
  EXPECT_EQ(caps[pci_cap::kDeviceCfg].offset, 0x2000u);
  EXPECT_EQ(caps[pci_cap::kDeviceCfg].length, 0x1000u);
  EXPECT_EQ(caps[pci_cap::kPciCfg].cap_len, 20);
  for (auto& [type, cap] : caps) {
    EXPECT_EQ(cap.at % 4, 0) << "cfg_type " << int(type);
    EXPECT_LE(uint64_t{cap.offset} + cap.length, transport_->bar_size());
  }
  // MSI-X: two vectors (one queue + config), table and PBA in BAR 4.
  ASSERT_NE(msix, 0);
  EXPECT_EQ(Cfg(msix + 2, 2) & 0x7ff, 1u);
  EXPECT_EQ(Cfg(msix + 4, 4), 0x4000u | T::kBar);
  EXPECT_EQ(Cfg(msix + 8, 4), 0x5000u | T::kBar);
}

TEST_F(PciTransportTest, LinuxStyleBringUpDeliversRandomBytesAndMsi) {
  EXPECT_EQ(Bar(cc::kNumQueues, 2), 1u);
  SetBar(cc::kDeviceFeatureSelect, 4, 0);
  EXPECT_EQ(Bar(cc::kDeviceFeature, 4), (1u << 28) | (1u << 29));
  SetBar(cc::kDeviceFeatureSelect, 4, 1);
  EXPECT_EQ(Bar(cc::kDeviceFeature, 4), 1u);  // VERSION_1 is bit 32
  SetBar(cc::kQueueSelect, 2, 0);
  EXPECT_EQ(Bar(cc::kQueueSize, 2), Rng::kQueueSize);
  EXPECT_EQ(Bar(cc::kQueueNotifyOff, 2), 0u);
  EXPECT_EQ(Bar(cc::kQueueMsixVector, 2), T::kNoVector);
  BringUp();
  EXPECT_EQ(Bar(cc::kQueueMsixVector, 2), 1u);

  std::vector<uint8_t> zeros(256);
  memory_.Write(kData, zeros);
  const uint16_t head = driver_.AddChain(std::vector<TestBuffer>{{kData, 256, true}});
  pci_.Kick(0);
  auto used = driver_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 256u);
  std::vector<uint8_t> bytes(256);
  memory_.Read(kData, bytes);
  EXPECT_NE(bytes, zeros);
  // Vector 1's message, exactly as programmed.
  ASSERT_EQ(sink_.sent.size(), 1u);
  EXPECT_EQ(sink_.sent[0], std::pair(kMsiAddress | 1 << 12, 0x41u));
  EXPECT_EQ(transport_->counters().notifications, 1u);
  EXPECT_EQ(transport_->counters().interrupts, 1u);
  EXPECT_EQ(transport_->counters().lost_interrupts, 0u);
}

TEST_F(PciTransportTest, MaskedVectorPendsAndIsDeliveredOnUnmask) {
  BringUp(kFVersion1);
  const uint64_t entry1 = transport_->msix_table_offset() + 16;
  SetBar(entry1 + 12, 4, pci::msix::kMaskBit);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  pci_.Kick(0);
  EXPECT_EQ(driver_.ReadUsedIdx(), 1);
  EXPECT_TRUE(sink_.sent.empty());
  EXPECT_EQ(Bar(transport_->msix_pba_offset(), 4), 0b10u) << "vector 1 pending";
  EXPECT_EQ(transport_->counters().pending_interrupts, 1u);
  SetBar(entry1 + 12, 4, 0);
  ASSERT_EQ(sink_.sent.size(), 1u);
  EXPECT_EQ(sink_.sent[0], std::pair(kMsiAddress | 1 << 12, 0x41u));
  EXPECT_EQ(Bar(transport_->msix_pba_offset(), 4), 0u);
}

TEST_F(PciTransportTest, WithoutMsixInterruptsAreLostButIsrIsSet) {
  ASSERT_EQ(pci_.Negotiate(kFVersion1), kAck | kDrv | kFok);
  pci_.SetupQueue(0, driver_, 1);
  SetStatus(kAck | kDrv | kFok | kDok);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  pci_.Kick(0);
  EXPECT_EQ(driver_.ReadUsedIdx(), 1);
  EXPECT_TRUE(sink_.sent.empty());
  EXPECT_EQ(transport_->counters().lost_interrupts, 1u);
  // 4.1.4.5: the read returns the bits and clears them.
  EXPECT_EQ(Bar(T::kIsrOffset, 1), T::kIsrQueue);
  EXPECT_EQ(Bar(T::kIsrOffset, 1), 0u);
}

TEST_F(PciTransportTest, UnmappedAndOutOfRangeVectors) {
  EnableMsix();
  ASSERT_EQ(pci_.Negotiate(kFVersion1), kAck | kDrv | kFok);
  SetBar(cc::kMsixConfig, 2, 2);  // only vectors 0 and 1 exist
  EXPECT_EQ(Bar(cc::kMsixConfig, 2), T::kNoVector);
  pci_.SetupQueue(0, driver_, 7);
  EXPECT_EQ(Bar(cc::kQueueMsixVector, 2), T::kNoVector);
  EXPECT_EQ(transport_->counters().bad_vectors, 2u);
  SetStatus(kAck | kDrv | kFok | kDok);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  pci_.Kick(0);
  EXPECT_EQ(driver_.ReadUsedIdx(), 1);
  EXPECT_TRUE(sink_.sent.empty());
  EXPECT_EQ(transport_->counters().unmapped_interrupts, 1u);
}

TEST_F(PciTransportTest, BarMoveUpdatesNotifyAddressesAndFiresListener) {
  const uint64_t base = pci_.BarBase();
  ASSERT_NE(base, 0u);
  ASSERT_EQ(moves_.size(), 1u) << "AddDevice maps the BAR";
  EXPECT_EQ(moves_[0], Move(0, std::nullopt, base + 0x3000));
  EXPECT_EQ(transport_->notify_address(0), base + 0x3000);
  EXPECT_EQ(transport_->notify_address(1), std::nullopt);

  // The guest turns decoding off, moves BAR 4, and turns decoding back on.
  SetCfg(pci::reg::kCommand, 2, 0);
  EXPECT_EQ(transport_->notify_address(0), std::nullopt);
  const uint64_t moved = 0xc8000000;
  SetCfg(0x10 + 4 * T::kBar, 4, static_cast<uint32_t>(moved));
  SetCfg(pci::reg::kCommand, 2, pci::command::kMemorySpace);
  ASSERT_EQ(moves_.size(), 3u);
  EXPECT_EQ(moves_[1], Move(0, base + 0x3000, std::nullopt));
  EXPECT_EQ(moves_[2], Move(0, std::nullopt, moved + 0x3000));
  EXPECT_EQ(transport_->notify_address(0), moved + 0x3000);

  // And the device works at the new place.
  BringUp();
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  pci_.SetMmio(moved + 0x3000, 2, 0);
  EXPECT_EQ(driver_.ReadUsedIdx(), 1);
}

TEST_F(PciTransportTest, NotifyQueueFromTheIoThreadPath) {
  transport_->NotifyQueue(0);
  EXPECT_EQ(transport_->counters().early_notifications, 1u);
  BringUp();
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  transport_->NotifyQueue(0);
  EXPECT_EQ(driver_.ReadUsedIdx(), 1);
  transport_->NotifyQueue(1);
  transport_->NotifyQueue(0xffff);
  EXPECT_EQ(transport_->counters().bad_notifications, 2u);
  EXPECT_EQ(transport_->counters().notifications, 1u);
}

TEST_F(PciTransportTest, PciCfgWindowReachesTheBar) {
  const uint8_t at = pci_.VirtioCaps()[pci_cap::kPciCfg].at;
  auto window = [&](uint8_t bar, uint32_t offset, uint32_t length) {
    SetCfg(at + pci_cap::kBar, 1, bar);
    SetCfg(at + pci_cap::kOffset, 4, offset);
    SetCfg(at + pci_cap::kLength, 4, length);
  };
  window(T::kBar, cc::kNumQueues, 2);
  EXPECT_EQ(Cfg(at + pci_cap::kPciCfgData, 4) & 0xffff, 1u);
  window(T::kBar, cc::kDeviceStatus, 1);
  SetCfg(at + pci_cap::kPciCfgData, 4, kAck);
  EXPECT_EQ(Status(), kAck);
  window(T::kBar, cc::kQueueSize, 2);
  EXPECT_EQ(Cfg(at + pci_cap::kPciCfgData, 2), Rng::kQueueSize);
  EXPECT_EQ(transport_->counters().bad_window, 0u);

  // 4.1.4.9.2: no such BAR, a length not 1, 2 or 4, misaligned, past the BAR's end.
  const std::tuple<uint8_t, uint32_t, uint32_t> bad[] = {
      {0, 0, 4}, {T::kBar, 0, 3}, {T::kBar, 2, 4}, {T::kBar, 0x8000, 4}};
  for (auto [bar, offset, length] : bad) {
    window(bar, offset, length);
    Cfg(at + pci_cap::kPciCfgData, 4);
    SetCfg(at + pci_cap::kPciCfgData, 4, 0);
  }
  EXPECT_EQ(transport_->counters().bad_window, 8u);
  EXPECT_EQ(Status(), kAck);
}

TEST_F(PciTransportTest, WrongWidthsAreIgnoredAndCounted) {
  EXPECT_EQ(Bar(cc::kMsixConfig, 4), 0u);  // a 16-bit field read as 32 bits
  SetBar(cc::kDeviceStatus, 2, kAck);      // 8-bit field written as 16
  EXPECT_EQ(Status(), 0u);
  SetBar(cc::kQueueSelect + 1, 1, 1);  // inside a field
  EXPECT_EQ(Bar(cc::kQueueSelect, 2), 0u);
  EXPECT_EQ(Bar(cc::kDeviceFeature, 8), 0u);  // 32-bit field as 64
  EXPECT_EQ(Bar(T::kIsrOffset, 4), 0u);
  SetBar(T::kNotifyOffset, 1, 0);  // notify: 16 or 32 bits only
  SetBar(T::kNotifyOffset + 2, 2, 0);
  EXPECT_EQ(transport_->counters().bad_access_size, 7u);
  // Reads of write-only notify addresses, writes to read-only fields, and holes.
  EXPECT_EQ(Bar(T::kNotifyOffset, 2), 0u);
  SetBar(cc::kNumQueues, 2, 9);
  EXPECT_EQ(Bar(cc::kNumQueues, 2), 1u);
  SetBar(T::kIsrOffset, 1, 3);
  EXPECT_EQ(Bar(0x7000, 4), 0u);
  EXPECT_EQ(transport_->counters().bad_register, 4u);
  // MSI-X table: DWORD/QWORD only.
  EXPECT_EQ(Bar(transport_->msix_table_offset(), 2), 0xffffu);
  EXPECT_EQ(transport_->msix().bad_accesses(), 1u);
}

TEST_F(PciTransportTest, SixtyFourBitFieldsAsHalvesOrWhole) {
  SetBar(cc::kQueueSelect, 2, 0);
  SetBar(cc::kQueueDesc, 8, 0x123456789abcdef0);
  EXPECT_EQ(Bar(cc::kQueueDesc, 8), 0x123456789abcdef0u);
  SetBar(cc::kQueueDriver + 4, 4, 0x1);
  SetBar(cc::kQueueDriver, 4, 0x2000);
  EXPECT_EQ(Bar(cc::kQueueDriver, 8), 0x100002000u);
  EXPECT_EQ(Bar(cc::kQueueDriver + 4, 4), 1u);
  EXPECT_EQ(Bar(cc::kQueueDriver, 4), 0x2000u);
  EXPECT_EQ(transport_->counters().bad_access_size, 0u);
}

TEST_F(PciTransportTest, QueueSelectOutOfRange) {
  SetBar(cc::kQueueSelect, 2, 1);
  EXPECT_EQ(Bar(cc::kQueueSize, 2), 0u) << "4.1.4.3: 0 means unavailable";
  EXPECT_EQ(Bar(cc::kQueueMsixVector, 2), T::kNoVector);
  SetBar(cc::kQueueSize, 2, 16);
  SetBar(cc::kQueueMsixVector, 2, 0);
  SetBar(cc::kQueueEnable, 2, 1);
  SetBar(cc::kQueueDesc, 4, 0x1000);
  EXPECT_EQ(Bar(cc::kQueueEnable, 2), 0u);
  EXPECT_EQ(Bar(cc::kQueueDesc, 8), 0u);
  EXPECT_EQ(transport_->counters().refused_writes, 4u);
  SetBar(cc::kQueueSelect, 2, 0xffff);
  EXPECT_EQ(Bar(cc::kQueueSize, 2), 0u);
}

TEST_F(PciTransportTest, QueueSizeNotPowerOfTwoNeedsReset) {
  EnableMsix();
  ASSERT_EQ(pci_.Negotiate(kFVersion1), kAck | kDrv | kFok);
  SetBar(cc::kMsixConfig, 2, 0);
  SetBar(cc::kQueueSelect, 2, 0);
  SetBar(cc::kQueueSize, 2, 3);
  SetBar(cc::kQueueEnable, 2, 1);
  EXPECT_EQ(Bar(cc::kQueueEnable, 2), 0u);
  EXPECT_EQ(transport_->counters().invalid_queues, 1u);
  EXPECT_TRUE(Status() & kNeedsReset);
  EXPECT_EQ(Bar(cc::kConfigGeneration, 1), 1u);
  // The config change went to msix_config's vector, and set the ISR config bit.
  ASSERT_EQ(sink_.sent.size(), 1u);
  EXPECT_EQ(sink_.sent[0], std::pair(kMsiAddress, 0x40u));
  EXPECT_EQ(Bar(T::kIsrOffset, 1), T::kIsrConfig);
  SetBar(cc::kQueueSize, 2, 0);
  SetBar(cc::kQueueEnable, 2, 1);
  EXPECT_EQ(transport_->counters().invalid_queues, 2u);
  SetStatus(0);
  EXPECT_EQ(Status(), 0u);
}

TEST_F(PciTransportTest, EnablingAQueueOutsideRamNeedsReset) {
  ASSERT_EQ(pci_.Negotiate(kFVersion1), kAck | kDrv | kFok);
  TestDriver outside(memory_, 16, testing::kRegion0End - 0x4000);  // used ring in the hole
  pci_.SetupQueue(0, outside, 1);
  EXPECT_EQ(Bar(cc::kQueueEnable, 2), 0u);
  EXPECT_TRUE(Status() & kNeedsReset);
  SetBar(cc::kQueueDesc, 8, 0xffff'ffff'ffff'fff0);
  SetBar(cc::kQueueEnable, 2, 1);
  EXPECT_EQ(transport_->counters().invalid_queues, 2u);
  EXPECT_EQ(transport_->counters().unmapped_interrupts, 2u) << "msix_config is NO_VECTOR";
}

TEST_F(PciTransportTest, FeaturesOkRequiresVersion1AndASubset) {
  EXPECT_EQ(pci_.Negotiate(kFEventIdx), kAck | kDrv);
  EXPECT_GE(transport_->counters().refused_status, 1u);
  SetStatus(kAck | kDrv | kFok | kDok);
  EXPECT_EQ(Status(), kAck | kDrv);
  EXPECT_EQ(pci_.Negotiate(kFVersion1 | (1ull << 40)), kAck | kDrv);
  EXPECT_EQ(pci_.Negotiate(kFVersion1 | kFEventIdx), kAck | kDrv | kFok);
  // Frozen after FEATURES_OK.
  SetBar(cc::kDriverFeatureSelect, 4, 0);
  SetBar(cc::kDriverFeature, 4, 0);
  EXPECT_EQ(Bar(cc::kDriverFeature, 4), 1u << 29);
  EXPECT_EQ(transport_->counters().refused_writes, 1u);
}

TEST_F(PciTransportTest, QueueIsFrozenOnceEnabled) {
  BringUp();
  SetBar(cc::kQueueSize, 2, 4);
  SetBar(cc::kQueueEnable, 2, 0);  // 4.1.4.3.2: the driver MUST NOT write 0
  SetBar(cc::kQueueDesc, 4, 0);
  EXPECT_EQ(Bar(cc::kQueueSize, 2), 16u);
  EXPECT_EQ(Bar(cc::kQueueEnable, 2), 1u);
  EXPECT_EQ(transport_->counters().refused_writes, 3u);
  SetBar(cc::kQueueMsixVector, 2, T::kNoVector);  // allowed: Linux unmaps at teardown
  EXPECT_EQ(Bar(cc::kQueueMsixVector, 2), T::kNoVector);
}

TEST_F(PciTransportTest, ResetReturnsEverythingToInitialState) {
  BringUp(kFVersion1 | kFEventIdx);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  pci_.Kick(0);
  SetStatus(0);
  EXPECT_EQ(Status(), 0u);
  EXPECT_EQ(Bar(cc::kMsixConfig, 2), T::kNoVector);
  EXPECT_EQ(Bar(cc::kQueueSelect, 2), 0u);
  EXPECT_EQ(Bar(cc::kQueueMsixVector, 2), T::kNoVector);
  EXPECT_EQ(Bar(cc::kQueueEnable, 2), 0u);
  EXPECT_EQ(Bar(cc::kQueueSize, 2), Rng::kQueueSize);
  EXPECT_EQ(Bar(cc::kQueueDesc, 8), 0u);
  EXPECT_EQ(Bar(T::kIsrOffset, 1), 0u);
  pci_.Kick(0);
  EXPECT_EQ(transport_->counters().early_notifications, 1u);
  // And it comes up again on fresh rings.
  TestDriver fresh(memory_, 32, 0x20000);
  ASSERT_EQ(pci_.Negotiate(kFVersion1), kAck | kDrv | kFok);
  pci_.SetupQueue(0, fresh, 1);
  SetStatus(kAck | kDrv | kFok | kDok);
  fresh.AddChain(std::vector<TestBuffer>{{kData, 16, true}});
  pci_.Kick(0);
  ASSERT_TRUE(fresh.NextUsed());
}

class PciConsoleTest : public PciTransportTest {
 protected:
  PciConsoleTest() : PciTransportTest(std::make_shared<Console>([](std::span<const uint8_t>) {})) {}
};

TEST_F(PciConsoleTest, EachQueueHasItsOwnNotifyAddressAndConfigIsForwarded) {
  EXPECT_EQ(Cfg(pci::reg::kDeviceId, 2), 0x1043u);
  EXPECT_EQ(Cfg(pci::reg::kClassCode + 1, 2), 0x0780u);
  EXPECT_EQ(pci_.VirtioCaps()[pci_cap::kNotifyCfg].length, 8u);
  const uint64_t base = pci_.BarBase();
  for (uint16_t q = 0; q < 2; ++q) {
    SetBar(cc::kQueueSelect, 2, q);
    EXPECT_EQ(Bar(cc::kQueueNotifyOff, 2), q);
    EXPECT_EQ(transport_->notify_address(q), base + 0x3000 + 4 * q);
  }
  ASSERT_EQ(moves_.size(), 2u);
  EXPECT_EQ(moves_[1], Move(1, std::nullopt, base + 0x3004));
  EXPECT_EQ(Bar(T::kDeviceCfgOffset, 2), 0u);  // cols
  EXPECT_EQ(Bar(T::kDeviceCfgOffset + 0x40, 1), 0u);
  SetBar(T::kDeviceCfgOffset, 1, 1);
  EXPECT_EQ(transport_->counters().bad_config_access, 2u);
  EXPECT_EQ(Cfg(pci::reg::kDeviceId, 2), 0x1043u);
}

// A hostile driver: random widths, offsets and values into config space and BAR 4,
// directly (no bus, so BARs do not move). Nothing may crash, and a reset recovers.
TEST(PciTransportHostileTest, RandomAccessesNeverCrash) {
  GuestMemory memory = testing::MakeTestMemory();
  FakeMsiSink sink;
  auto rng = std::make_shared<Rng>();
  PciTransport transport(memory, rng, sink);
  BusDevice& bar = *transport.bar_device(T::kBar);
  std::mt19937_64 random(1234);
  const size_t sizes[] = {1, 2, 3, 4, 8};
  uint8_t bytes[8];
  for (int i = 0; i < 50000; ++i) {
    const uint64_t value = random();
    StoreLe(bytes, 0, value);
    const size_t size = sizes[random() % 5];
    switch (random() % 6) {
      case 0:
        transport.ConfigRead(static_cast<uint16_t>(random() % 0x110), std::span(bytes, size));
        break;
      case 1:
        transport.ConfigWrite(static_cast<uint16_t>(random() % 0x110), std::span(bytes, size));
        break;
      case 2:
        bar.Read(random() % (transport.bar_size() + 0x100), std::span(bytes, size));
        break;
      case 3:
        // Mostly common config, where the state lives.
        bar.Write(random() % 0x40, std::span(bytes, size));
        break;
      case 4:
        bar.Write(random() % (transport.bar_size() + 0x100), std::span(bytes, size));
        break;
      default:
        transport.NotifyQueue(static_cast<uint16_t>(random() % 3));
        break;
    }
  }
  const uint8_t zero = 0;
  bar.Write(cc::kDeviceStatus, std::span(&zero, 1));
  uint8_t status = 0xff;
  bar.Read(cc::kDeviceStatus, std::span(&status, 1));
  EXPECT_EQ(status, 0);
  EXPECT_FALSE(rng->needs_reset());
}

}  // namespace
}  // namespace vireo::virtio
