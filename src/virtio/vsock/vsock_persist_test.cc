// virtio-vsock snapshot state: host connections are not carried, so a restored device has
// none, re-creates its socket at the same path, and gives the guest one
// VIRTIO_VSOCK_EVENT_TRANSPORT_RESET in the first event buffer it posts; its rx and tx rings
// continue at their saved positions. A snapshot of another CID is refused.
#include <sys/stat.h>

#include "virtio/vsock/vsock_test_fixture.h"

namespace vireo::virtio::vsock::testing {
namespace {

constexpr GuestAddress kEventBuffer = 0x3c000;

class VsockPersistTest : public VsockTest {
 protected:
  // The device is destroyed (as the source VMM exits) and a fresh one restored in its place
  // from `state` and the saved queues, activated as the transport's restore does.
  void RestoreFresh(const VsockSavedState& state, const std::vector<QueueState>& saved) {
    device_.reset();
    auto device =
        Vsock::Create({.guest_cid = kCid, .uds_path = path_, .max_connections = 64}, *loop_);
    ASSERT_TRUE(device) << device.error().message;
    device_ = std::move(*device);
    auto restored = device_->RestoreState(state);
    ASSERT_TRUE(restored) << restored.error().message;
    for (size_t i = 0; i < queues_.size(); ++i) {
      queues_[i].Reset();
      ASSERT_TRUE(queues_[i].Restore(memory_, saved[i]));
    }
    ASSERT_TRUE(device_->Activate({memory_, queues_, kFVersion1 | kVsockFStream, interrupt_}));
  }

  void PostEventBuffer() {
    const TestBuffer buffer{kEventBuffer, 8, true};
    ASSERT_TRUE(memory_.WriteObj(kEventBuffer, uint64_t{0xdeadbeefdeadbeef}));
    ev_->AddChain({&buffer, 1});
    device_->QueueNotify(Vsock::kEventQueue);
  }
};

TEST_F(VsockPersistTest, RestoredDeviceResetsTheGuestsTransportAndCarriesOn) {
  uint32_t host_port = 0;
  UniqueFd host = EstablishFromHost(1234, host_port);
  ASSERT_TRUE(host.valid());
  const VsockSavedState state = device_->SaveState();
  EXPECT_EQ(state.guest_cid, kCid);
  std::vector<QueueState> saved;
  for (const Queue& q : queues_) saved.push_back(q.state());

  RestoreFresh(state, saved);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_TRUE(HostSeesEof(host.get()));  // the old connection ended with the old device
  EXPECT_EQ(device_->connection_count(), 0u);
  // No event buffer yet: the reset waits for one.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(ev_->NextUsed());
  PostEventBuffer();
  std::optional<UsedElement> used;
  ASSERT_TRUE(WaitUntil([&] { return (used = ev_->NextUsed()).has_value(); }));
  EXPECT_EQ(used->len, 4u);
  EXPECT_EQ(*memory_.ReadObj<uint32_t>(kEventBuffer), 0u);  // TRANSPORT_RESET
  EXPECT_EQ(*memory_.ReadObj<uint32_t>(kEventBuffer + 4), 0xdeadbeefu);
  EXPECT_TRUE(WaitUntil([&] { return interrupt_.used[Vsock::kEventQueue] == 1; }));
  EXPECT_EQ(device_->counters().transport_resets, 1u);
  // Only once: a second event buffer stays posted.
  PostEventBuffer();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(ev_->NextUsed());

  // The guest's packets for the old connection are answered with RST.
  Send(GuestHeader(1234, host_port, Op::kRw, 2), "hi");
  auto rst = Receive();
  ASSERT_TRUE(rst);
  EXPECT_EQ(rst->op(), Op::kRst);
  EXPECT_EQ(queues_[Vsock::kRxQueue].next_used(), saved[Vsock::kRxQueue].next_used + 1);
  // A new host connection reaches the guest through the socket re-created at the same path,
  // on the rx ring where the old device left it.
  uint32_t new_port = 0;
  UniqueFd again = EstablishFromHost(1235, new_port);
  ASSERT_TRUE(again.valid());
  HostWrite(again.get(), "after");
  auto packet = Receive();
  ASSERT_TRUE(packet);
  EXPECT_EQ(packet->text(), "after");
}

TEST_F(VsockPersistTest, AnotherGuestCidIsRefused) {
  device_->Reset();
  auto refused = device_->RestoreState(VsockSavedState{kCid + 1});
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message.find("guest CID 4 is not the device's 3"), std::string::npos)
      << refused.error().message;
  ActivateDevice();
  EXPECT_FALSE(device_->RestoreState(VsockSavedState{kCid}));  // not into an active device
}

TEST_F(VsockPersistTest, AnOlderDeviceLeavesANewerSocketAtItsPath) {
  // A live migration on one host: the destination binds the path while the source runs;
  // the source's exit must not unlink the destination's socket.
  auto second =
      Vsock::Create({.guest_cid = kCid, .uds_path = path_, .max_connections = 64}, *loop_);
  ASSERT_TRUE(second) << second.error().message;
  device_.reset();
  struct stat st {};
  EXPECT_EQ(::stat(path_.c_str(), &st), 0);
  EXPECT_TRUE(HostConnect(path_).valid());
  second->reset();
  EXPECT_NE(::stat(path_.c_str(), &st), 0);  // its own socket goes with it
}

}  // namespace
}  // namespace vireo::virtio::vsock::testing
