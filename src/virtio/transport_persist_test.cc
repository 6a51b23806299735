// Snapshot state of the virtio transports (transport_persist.cc): a device brought up by a
// driver is saved, restored into freshly built objects, reads back identical and keeps
// working where the driver left it; hostile values are refused and leave the fresh
// transport reset.
#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/testing/fakes.h"
#include "virtio/console.h"
#include "virtio/mmio_transport.h"
#include "virtio/pci_common_cfg.h"
#include "virtio/pci_transport.h"
#include "virtio/rng.h"
#include "virtio/testing/driver.h"
#include "virtio/testing/pci_driver.h"

namespace vireo::virtio {
namespace {

namespace cc = common_cfg;
using testing::TestBuffer;
using testing::TestDriver;

constexpr uint8_t kAck = DeviceStatus::kAcknowledge;
constexpr uint8_t kDrv = DeviceStatus::kDriver;
constexpr uint8_t kFok = DeviceStatus::kFeaturesOk;
constexpr uint8_t kDok = DeviceStatus::kDriverOk;
constexpr GuestAddress kData = 0x40000;
constexpr uint64_t kMsiAddress = 0xfee00000;
constexpr uint64_t kMovedBar = 0xd0000000;  // inside PciTestDriver's window

class FakeMsiSink : public pci::MsiSink {
 public:
  void SendMsi(uint64_t address, uint32_t data) override { sent.emplace_back(address, data); }
  std::vector<std::pair<uint64_t, uint32_t>> sent;
};

// One VM's worth of virtio-pci: a transport on its own bus, with the notify-address moves
// the VMM would turn into ioeventfds.
struct PciSide {
  explicit PciSide(const GuestMemory& memory,
                   std::shared_ptr<VirtioDevice> device = std::make_shared<Rng>())
      : transport(std::make_shared<PciTransport>(memory, std::move(device), sink)),
        listener_set((transport->SetNotifyAddressListener(
                          [this](uint16_t, std::optional<uint64_t>, std::optional<uint64_t> to) {
                            notify_at = to;
                          }),
                      true)),
        pci(transport) {}
  FakeMsiSink sink;
  std::optional<uint64_t> notify_at;
  std::shared_ptr<PciTransport> transport;
  bool listener_set;
  testing::PciTestDriver pci;
};

class TransportPersistTest : public ::testing::Test {
 protected:
  TransportPersistTest() : memory_(testing::MakeTestMemory()), driver_(memory_, 16) {}

  // Linux-style bring-up, then the guest moves BAR 4 and completes one request.
  void BringUpPci(PciSide& side) {
    ASSERT_TRUE(side.pci.EnableMsix(kMsiAddress, 0x40));
    ASSERT_EQ(side.pci.Negotiate(kFVersion1 | kFEventIdx), kAck | kDrv | kFok);
    side.pci.SetBar(cc::kMsixConfig, 2, 0);
    side.pci.SetupQueue(0, driver_, 1);
    side.pci.SetStatus(kAck | kDrv | kFok | kDok);
    ASSERT_EQ(side.pci.Status(), kAck | kDrv | kFok | kDok);
    const uint16_t bar = 0x10 + 4 * PciTransport::kBar;
    side.pci.SetCfg(pci::reg::kCommand, 2, 0);
    side.pci.SetCfg(bar, 4, static_cast<uint32_t>(kMovedBar) | pci::bar_bits::kMemoryType64);
    side.pci.SetCfg(bar + 4, 4, 0);
    side.pci.SetCfg(pci::reg::kCommand, 2, pci::command::kMemorySpace | pci::command::kBusMaster);
    ASSERT_EQ(side.pci.BarBase(), kMovedBar);
    Request(side);
  }

  void Request(PciSide& side) {
    driver_.SetUsedEvent(driver_.avail_idx());  // EVENT_IDX: interrupt for this one
    const uint16_t head = driver_.AddChain(std::vector<TestBuffer>{{kData, 32, true}});
    side.pci.Kick(0);
    auto used = driver_.NextUsed();
    ASSERT_TRUE(used);
    EXPECT_EQ(used->id, head);
  }

  GuestMemory memory_;
  TestDriver driver_;
};

TEST_F(TransportPersistTest, PciStateRoundTripsAndTheDeviceCarriesOn) {
  PciSide before(memory_);
  BringUpPci(before);
  ASSERT_EQ(before.sink.sent.size(), 1u);
  const TransportState saved = before.transport->SaveState();
  EXPECT_EQ(saved.status, kAck | kDrv | kFok | kDok);
  EXPECT_EQ(saved.queues[0].next_avail, 1);
  EXPECT_EQ(saved.queues[0].next_used, 1);
  EXPECT_TRUE(saved.queues[0].event_idx);
  EXPECT_EQ(saved.queue_vectors, std::vector<uint16_t>{1});

  PciSide after(memory_);  // BAR 4 at the firmware's address
  ASSERT_NE(after.pci.BarBase(), kMovedBar);
  ASSERT_TRUE(after.transport->RestoreState(saved));
  after.pci.bus().RefreshBars(after.pci.slot());
  EXPECT_EQ(after.pci.BarBase(), kMovedBar);
  EXPECT_EQ(after.notify_at, kMovedBar + PciTransport::kNotifyOffset) << "ioeventfd moved";
  EXPECT_EQ(after.transport->SaveState(), saved);
  EXPECT_TRUE(after.transport->msix().enabled());
  EXPECT_EQ(after.pci.Bar(cc::kQueueMsixVector, 2), 1u);

  // The driver goes on with the same rings: the next request completes at the restored
  // position with the restored MSI-X message, and nothing was replayed.
  Request(after);
  EXPECT_EQ(driver_.ReadUsedIdx(), 2);
  ASSERT_EQ(after.sink.sent.size(), 1u);
  EXPECT_EQ(after.sink.sent[0], std::pair(kMsiAddress | 1 << 12, 0x41u));
}

TEST_F(TransportPersistTest, PciRefusesHostileStateAndStaysReset) {
  PciSide before(memory_);
  BringUpPci(before);
  const TransportState good = before.transport->SaveState();
  struct Case {
    const char* what;
    void (*mutate)(TransportState&);
  };
  const Case cases[] = {
      {"DRIVER_OK without FEATURES_OK", [](TransportState& s) { s.status = kAck | kDrv | kDok; }},
      {"unknown status bit", [](TransportState& s) { s.status |= 0x10; }},
      {"features never offered", [](TransportState& s) { s.driver_features |= 1ull << 40; }},
      {"no VERSION_1", [](TransportState& s) { s.driver_features = 0; }},
      {"desc table outside memory",
       [](TransportState& s) { s.queues[0].desc_table = 0xfffffffffffff000ull; }},
      {"used ring wraps", [](TransportState& s) { s.queues[0].used_ring = ~0ull - 4; }},
      {"queue size not a power of two", [](TransportState& s) { s.queues[0].size = 3; }},
      {"queue larger than the device's", [](TransportState& s) { s.queues[0].size = 1024; }},
      {"vector beyond the table", [](TransportState& s) { s.queue_vectors[0] = 2; }},
      {"config vector beyond the table", [](TransportState& s) { s.config_vector = 7; }},
      {"a queue too many", [](TransportState& s) { s.queues.push_back(s.queues[0]); }},
      {"short configuration space", [](TransportState& s) { s.pci_config.resize(64); }},
      {"MSI-X table of another size", [](TransportState& s) { s.msix.table.pop_back(); }},
      {"pending bit beyond the vectors", [](TransportState& s) { s.msix.pba[0] = 1u << 5; }},
      {"unknown ISR bits", [](TransportState& s) { s.interrupt_status = 0x80; }},
  };
  for (const Case& c : cases) {
    TransportState bad = good;
    c.mutate(bad);
    PciSide fresh(memory_);
    auto restored = fresh.transport->RestoreState(bad);
    EXPECT_FALSE(restored) << c.what;
    if (!restored) {
      EXPECT_FALSE(restored.error().message.empty()) << c.what;
    }
    EXPECT_EQ(fresh.pci.Status(), 0) << c.what;
    EXPECT_FALSE(fresh.transport->SaveState().queues[0].ready) << c.what;
  }
  // Read-only bits of configuration space (the identity) are not a snapshot's to change.
  TransportState ids = good;
  ids.pci_config[pci::reg::kVendorId] = 0x34;
  PciSide fresh(memory_);
  ASSERT_TRUE(fresh.transport->RestoreState(ids));
  EXPECT_EQ(fresh.pci.Cfg(pci::reg::kVendorId, 2), PciTransport::kVendorId);
  // Restoring twice into one transport is a VMM mistake, refused.
  EXPECT_FALSE(fresh.transport->RestoreState(good));
}

// virtio-console: a receive buffer the driver posted before the snapshot is in the ring, so
// host input after the restore lands in it; transmit goes on too. (Host input still queued
// in the old device at snapshot time is not carried: the restored device starts empty.)
TEST_F(TransportPersistTest, ConsoleReceiveBufferPostedBeforeTheSnapshotGetsInputAfterIt) {
  std::string out_before, out_after;
  auto collect = [](std::string& into) {
    return [&into](std::span<const uint8_t> bytes) { into.append(bytes.begin(), bytes.end()); };
  };
  TestDriver tx(memory_, 16, 0x20000);
  PciSide before(memory_, std::make_shared<Console>(collect(out_before)));
  ASSERT_TRUE(before.pci.EnableMsix(kMsiAddress, 0x40));
  ASSERT_EQ(before.pci.Negotiate(kFVersion1), kAck | kDrv | kFok);
  before.pci.SetupQueue(Console::kReceiveQueue, driver_, 1);
  before.pci.SetupQueue(Console::kTransmitQueue, tx, 2);
  before.pci.SetStatus(kAck | kDrv | kFok | kDok);
  const uint16_t rx_head = driver_.AddChain(std::vector<TestBuffer>{{kData, 64, true}});
  before.pci.Kick(Console::kReceiveQueue);
  const std::string hello = "hello";
  memory_.Write(0x50000, std::span(reinterpret_cast<const uint8_t*>(hello.data()), hello.size()));
  tx.AddChain(std::vector<TestBuffer>{{0x50000, 5, false}});
  before.pci.Kick(Console::kTransmitQueue);
  ASSERT_EQ(out_before, "hello");
  const TransportState saved = before.transport->SaveState();

  auto console = std::make_shared<Console>(collect(out_after));
  PciSide after(memory_, console);
  ASSERT_TRUE(after.transport->RestoreState(saved));
  after.pci.bus().RefreshBars(after.pci.slot());
  EXPECT_EQ(after.transport->SaveState(), saved);
  const std::string input = "abc";
  EXPECT_EQ(console->EnqueueInput(
                std::span(reinterpret_cast<const uint8_t*>(input.data()), input.size())),
            3u);
  auto used = driver_.NextUsed();
  ASSERT_TRUE(used) << "the pre-snapshot receive buffer was not used";
  EXPECT_EQ(used->id, rx_head);
  EXPECT_EQ(used->len, 3u);
  uint8_t got[3] = {};
  memory_.Read(kData, got);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(got), 3), "abc");
  tx.AddChain(std::vector<TestBuffer>{{0x50000, 5, false}});
  after.pci.Kick(Console::kTransmitQueue);
  EXPECT_EQ(out_after, "hello");
  EXPECT_EQ(tx.ReadUsedIdx(), 2);
}

// A buffer the driver made available and kicked just before the snapshot, whose kick the
// device never saw (left in an ioeventfd at the pause), is used after the restore, exactly
// once: the machine hands every queue over after a restore (NotifyAllQueues), and doing so
// again finds nothing new.
TEST_F(TransportPersistTest, MmioBufferKickedBeforeTheSnapshotIsUsedOnceAfterTheRestore) {
  auto irq = std::make_shared<vireo::testing::FakeInterruptLine>();
  MmioTransport before(memory_, std::make_shared<Rng>(), irq);
  ASSERT_EQ(testing::MmioNegotiate(before, kFVersion1), kAck | kDrv | kFok);
  testing::MmioSetupQueue(before, 0, driver_);
  testing::Write32(before, MmioTransport::kStatus, kAck | kDrv | kFok | kDok);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 32, true}});  // the kick is lost
  const TransportState saved = before.SaveState();
  EXPECT_EQ(saved.queues[0].next_avail, 0);

  auto irq2 = std::make_shared<vireo::testing::FakeInterruptLine>();
  MmioTransport after(memory_, std::make_shared<Rng>(), irq2);
  ASSERT_TRUE(after.RestoreState(saved));
  after.NotifyAllQueues();
  after.NotifyAllQueues();
  ASSERT_TRUE(driver_.NextUsed());
  EXPECT_EQ(driver_.ReadUsedIdx(), 1) << "used once, not replayed";
  EXPECT_EQ(after.SaveState().queues[0].next_avail, 1);
}

TEST_F(TransportPersistTest, MmioStateRoundTripsAndTheDeviceCarriesOn) {
  auto irq = std::make_shared<vireo::testing::FakeInterruptLine>();
  MmioTransport before(memory_, std::make_shared<Rng>(), irq);
  ASSERT_EQ(testing::MmioNegotiate(before, kFVersion1), kAck | kDrv | kFok);
  testing::MmioSetupQueue(before, 0, driver_);
  testing::Write32(before, MmioTransport::kStatus, kAck | kDrv | kFok | kDok);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 32, true}});
  testing::Write32(before, MmioTransport::kQueueNotify, 0);
  ASSERT_TRUE(driver_.NextUsed());
  const TransportState saved = before.SaveState();
  EXPECT_EQ(saved.interrupt_status, MmioTransport::kInterruptUsedBuffer) << "not acknowledged yet";
  EXPECT_TRUE(saved.pci_config.empty());

  auto irq2 = std::make_shared<vireo::testing::FakeInterruptLine>();
  MmioTransport after(memory_, std::make_shared<Rng>(), irq2);
  ASSERT_TRUE(after.RestoreState(saved));
  EXPECT_EQ(after.SaveState(), saved);
  EXPECT_EQ(testing::Read32(after, MmioTransport::kInterruptStatus),
            MmioTransport::kInterruptUsedBuffer);
  driver_.AddChain(std::vector<TestBuffer>{{kData, 32, true}});
  testing::Write32(after, MmioTransport::kQueueNotify, 0);
  ASSERT_TRUE(driver_.NextUsed());
  EXPECT_EQ(driver_.ReadUsedIdx(), 2);
  EXPECT_FALSE(irq2->changes.empty()) << "the restored device interrupts";

  // pci state on an mmio device, and a ring outside memory, are refused.
  TransportState pci_state = saved;
  pci_state.queue_vectors = {1};
  MmioTransport fresh1(memory_, std::make_shared<Rng>(), irq2);
  EXPECT_FALSE(fresh1.RestoreState(pci_state));
  TransportState outside = saved;
  outside.queues[0].avail_ring = 0x7ffffffffff0ull;
  MmioTransport fresh2(memory_, std::make_shared<Rng>(), irq2);
  EXPECT_FALSE(fresh2.RestoreState(outside));
  EXPECT_EQ(testing::Read32(fresh2, MmioTransport::kStatus), 0u);
}

}  // namespace
}  // namespace vireo::virtio
