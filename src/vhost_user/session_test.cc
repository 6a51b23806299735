// The vhost-user transport against a fake front-end over a socketpair: the rng and blk devices
// of `vireo run`, driven through vhost-user messages, and hostile messages that must end in a
// failure reply or a disconnect, never a crash or an access outside the memory table.
#include "vhost_user/session.h"

#include <fcntl.h>
#include <gtest/gtest.h>

#include <memory>

#include "block/open_image.h"
#include "block/testing.h"
#include "vhost_user/testing/fake_frontend.h"
#include "virtio/blk.h"
#include "virtio/rng.h"

namespace vireo::vhost_user {
namespace {

using testing::FakeFrontend;
using testing::kAvailGpa;
using testing::kBufferGpa;
using testing::kDescGpa;
using testing::kFileOffset;
using testing::kRamGpa;
using testing::kRamSize;
using testing::kRamUser;
using testing::kUsedGpa;

class RngSession : public ::testing::Test {
 protected:
  void SetUp() override {
    auto loop = EventLoop::Create("vhost-test");
    ASSERT_TRUE(loop) << loop.error().message;
    loop_ = std::move(*loop);
    ASSERT_TRUE(loop_->Start());
    frontend_ = std::make_unique<FakeFrontend>(rng_, *loop_);
    ASSERT_TRUE(frontend_->ok());
  }
  void TearDown() override {
    frontend_.reset();
    loop_->Stop();
  }
  FakeFrontend& fe() { return *frontend_; }

  virtio::Rng rng_;
  std::unique_ptr<EventLoop> loop_;
  std::unique_ptr<FakeFrontend> frontend_;
};

TEST_F(RngSession, OffersFeaturesProtocolFeaturesAndQueueCount) {
  auto features = fe().GetU64(Request::kGetFeatures);
  ASSERT_TRUE(features);
  EXPECT_TRUE(*features & virtio::kFVersion1);
  EXPECT_TRUE(*features & kFProtocolFeatures);
  EXPECT_TRUE(*features & virtio::kFEventIdx);
  EXPECT_FALSE(*features & kFLogAll) << "dirty logging is not implemented, so not offered";
  EXPECT_EQ(fe().GetU64(Request::kGetProtocolFeatures), kProtocolFMq | kProtocolFReplyAck)
      << "no CONFIG: QEMU keeps rng's (empty) config itself";
  EXPECT_EQ(fe().GetU64(Request::kGetQueueNum), 1u);
}

TEST_F(RngSession, FillsABufferAndSignalsTheCallFd) {
  ASSERT_TRUE(fe().Handshake());
  ASSERT_EQ(fe().StartRing(0), 0u);
  fe().PostBuffer(0, 64, /*writable=*/true);
  ASSERT_TRUE(fe().WaitCall()) << "no used-buffer notification";
  EXPECT_EQ(fe().UsedIdx(), 1);
  EXPECT_EQ(fe().Used(0).id, 0u);
  EXPECT_EQ(fe().Used(0).len, 64u);
  const uint8_t* data = fe().Host(kBufferGpa);
  EXPECT_NE(std::count(data, data + 64, 0), 64) << "64 random bytes are not all zero";
}

TEST_F(RngSession, GetVringBaseStopsTheRingAndResumesFromTheBase) {
  ASSERT_TRUE(fe().Handshake());
  ASSERT_EQ(fe().StartRing(0), 0u);
  fe().PostBuffer(0, 16, true);
  ASSERT_TRUE(fe().WaitCall());
  ASSERT_TRUE(fe().SendObj(Request::kGetVringBase, VringState{0, 0}));
  auto reply = fe().Receive();
  ASSERT_TRUE(reply);
  auto state = reply->As<VringState>();
  ASSERT_TRUE(state);
  EXPECT_EQ(state->index, 0u);
  EXPECT_EQ(state->num, 1u) << "one chain consumed";

  // Stopped: a buffer posted now is not consumed...
  fe().PostBuffer(1, 16, true);
  EXPECT_FALSE(fe().WaitCall(200));
  EXPECT_EQ(fe().UsedIdx(), 1);
  // ...until the ring is started again from the base it reported (a new kick fd restarts it),
  // which also picks up what was posted meanwhile.
  ASSERT_EQ(fe().StartRing(0, 1), 0u);
  ASSERT_TRUE(fe().WaitCall());
  EXPECT_EQ(fe().UsedIdx(), 2);
  EXPECT_EQ(fe().Used(1).id, 1u);
}

TEST_F(RngSession, BuffersPostedBeforeTheRingStartsAreProcessed) {
  ASSERT_TRUE(fe().Handshake());
  fe().PostBuffer(0, 8, true, /*kick=*/false);
  ASSERT_EQ(fe().StartRing(0), 0u);
  EXPECT_TRUE(fe().WaitCall());
  EXPECT_EQ(fe().UsedIdx(), 1);
}

TEST_F(RngSession, RingsStayDisabledUntilEnabledWithProtocolFeatures) {
  ASSERT_TRUE(fe().Handshake());
  ASSERT_EQ(fe().StartRing(0), 0u);
  ASSERT_EQ(fe().Ack(Request::kSetVringEnable, VringState{0, 0}), 0u);
  fe().PostBuffer(0, 8, true);
  EXPECT_FALSE(fe().WaitCall(200)) << "a disabled ring must not be processed";
  ASSERT_EQ(fe().Ack(Request::kSetVringEnable, VringState{0, 1}), 0u);
  EXPECT_TRUE(fe().WaitCall());
}

TEST_F(RngSession, BadChainCompletesEmptyAndTheDeviceGoesOn) {
  ASSERT_TRUE(fe().Handshake());
  ASSERT_EQ(fe().StartRing(0), 0u);
  // A buffer far outside the memory table.
  fe().PostBuffer(0, 64, true, true, /*addr=*/0xdead0000);
  ASSERT_TRUE(fe().WaitCall());
  EXPECT_EQ(fe().Used(0).len, 0u);
  fe().PostBuffer(1, 32, true);
  ASSERT_TRUE(fe().WaitCall());
  EXPECT_EQ(fe().Used(1).len, 32u);
}

// ---- Hostile front-ends: refused with a failure reply, the connection stays usable. ----

TEST_F(RngSession, RefusesRingAddressesOutsideTheTable) {
  ASSERT_TRUE(fe().Handshake());
  VringAddr addr{
      0, 0, kRamUser + kRamSize, FakeFrontend::User(kUsedGpa), FakeFrontend::User(kAvailGpa), 0};
  EXPECT_EQ(fe().Ack(Request::kSetVringAddr, addr), 1u);
  addr.desc_user_addr = 0x1000;  // below every region
  EXPECT_EQ(fe().Ack(Request::kSetVringAddr, addr), 1u);
  EXPECT_TRUE(fe().Alive());
}

TEST_F(RngSession, RefusesARingRunningOffTheEndOfTheTable) {
  ASSERT_TRUE(fe().Handshake());
  ASSERT_EQ(fe().Ack(Request::kSetVringNum, VringState{0, 8}), 0u);
  // The used ring starts 4 bytes before the end of RAM: its start translates, its extent does
  // not fit. Activation (at the enable) must fail, not read past the mapping.
  VringAddr addr{
      0, 0, FakeFrontend::User(kDescGpa), kRamUser + kRamSize - 4, FakeFrontend::User(kAvailGpa),
      0};
  ASSERT_EQ(fe().Ack(Request::kSetVringAddr, addr), 0u);
  auto kick = testing::MakeEventFd();
  const int fds[] = {kick.get()};
  EXPECT_EQ(fe().Ack(Request::kSetVringKick, uint64_t{0}, fds), 0u);
  EXPECT_EQ(fe().Ack(Request::kSetVringEnable, VringState{0, 1}), 1u);
  EXPECT_TRUE(fe().Alive());
}

TEST_F(RngSession, RefusesBadRingIndicesAndSizes) {
  ASSERT_TRUE(fe().Handshake());
  EXPECT_EQ(fe().Ack(Request::kSetVringNum, VringState{5, 8}), 1u);
  EXPECT_EQ(fe().Ack(Request::kSetVringNum, VringState{0, 3}), 1u) << "not a power of two";
  EXPECT_EQ(fe().Ack(Request::kSetVringNum, VringState{0, 0}), 1u);
  EXPECT_EQ(fe().Ack(Request::kSetVringNum, VringState{0, 65536}), 1u);
  EXPECT_EQ(fe().Ack(Request::kSetVringBase, VringState{0, 0x10000}), 1u);
  EXPECT_EQ(fe().Ack(Request::kSetVringEnable, VringState{200, 1}), 1u);
  EXPECT_TRUE(fe().Alive());
}

TEST_F(RngSession, RefusesMemoryTablesItCannotMapSafely) {
  ASSERT_EQ(fe().Ack(Request::kSetProtocolFeatures, kProtocolFReplyAck), 0u);
  // Region longer than the file: touching its end would SIGBUS.
  EXPECT_EQ(fe().SetMemTable({kRamGpa, kRamSize + 0x1000, kRamUser, kFileOffset}), 1u);
  // Offset that wraps.
  EXPECT_EQ(fe().SetMemTable({kRamGpa, kRamSize, kRamUser, UINT64_MAX - 0x10}), 1u);
  // Guest-physical range that wraps.
  EXPECT_EQ(fe().SetMemTable({UINT64_MAX - 0xfff, kRamSize, kRamUser, kFileOffset}), 1u);
  // Not a regular file.
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
  EXPECT_EQ(fe().SetMemTable({kRamGpa, 0x1000, kRamUser, 0}, r.get()), 1u);
  EXPECT_TRUE(fe().Alive());
}

TEST_F(RngSession, RefusesNonEventfdKicksAndUnofferedFeatures) {
  ASSERT_TRUE(fe().Handshake());
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  UniqueFd r(pipe_fds[0]), w(pipe_fds[1]);
  const int fds[] = {r.get()};
  EXPECT_EQ(fe().Ack(Request::kSetVringKick, uint64_t{0}, fds), 1u);
  EXPECT_EQ(fe().Ack(Request::kSetFeatures, uint64_t{1} << 63), 1u);
  EXPECT_EQ(fe().Ack(Request::kSetProtocolFeatures, kProtocolFBackendReq), 1u);
  EXPECT_EQ(fe().Ack(Request::kSetLogBase, uint64_t{0}), 1u) << "unsupported request";
  EXPECT_EQ(fe().Ack(static_cast<Request>(999), uint64_t{0}), 1u) << "unknown request";
  EXPECT_TRUE(fe().Alive());
}

// ---- Hostile front-ends: malformed messages close the connection. ----

TEST_F(RngSession, DisconnectsOnAWrongPayloadSize) {
  ASSERT_TRUE(fe().Send(Request::kSetVringNum, BytesOf(uint32_t{8})));
  EXPECT_FALSE(fe().Receive());
  EXPECT_EQ(fe().handled(), 1u);
}

TEST_F(RngSession, DisconnectsOnAPayloadTooLargeToBuffer) {
  Header header{static_cast<uint32_t>(Request::kSetFeatures), kVersion, 1u << 20};
  ASSERT_EQ(::write(fe().sock(), &header, sizeof(header)), static_cast<ssize_t>(sizeof(header)));
  EXPECT_FALSE(fe().Receive());
  EXPECT_EQ(fe().handled(), 0u);
}

TEST_F(RngSession, DisconnectsOnAnUnknownVersion) {
  ASSERT_TRUE(fe().Send(Request::kGetFeatures, {}, {}, 2));
  EXPECT_FALSE(fe().Receive());
}

TEST_F(RngSession, DisconnectsOnTooManyFds) {
  // Nine fds: one more than any message may carry. Sent by hand (SendMessage refuses it).
  std::vector<UniqueFd> owned;
  std::vector<int> fds;
  for (int i = 0; i < 9; ++i) {
    owned.push_back(testing::MakeEventFd());
    fds.push_back(owned.back().get());
  }
  struct {
    Header header;
    MemoryTableHeader table;
  } msg{{static_cast<uint32_t>(Request::kSetMemTable), kVersion, 8}, {0, 0}};
  iovec iov{&msg, sizeof(msg)};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 9)] = {};
  msghdr mh{};
  mh.msg_iov = &iov;
  mh.msg_iovlen = 1;
  mh.msg_control = control;
  mh.msg_controllen = sizeof(control);
  cmsghdr* c = CMSG_FIRSTHDR(&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * 9);
  std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * 9);
  ASSERT_EQ(::sendmsg(fe().sock(), &mh, 0), static_cast<ssize_t>(sizeof(msg)));
  EXPECT_FALSE(fe().Receive());
}

TEST_F(RngSession, DisconnectsWhenFdsDoNotMatchTheRegions) {
  struct {
    MemoryTableHeader header;
    MemoryRegion regions[2];
  } table{{2, 0}, {{kRamGpa, 0x1000, kRamUser, 0}, {0, 0x1000, kRamUser + 0x10000, 0}}};
  const int fds[] = {fe().memfd()};
  ASSERT_TRUE(fe().SendObj(Request::kSetMemTable, table, fds, kVersion | kFlagNeedReply));
  EXPECT_FALSE(fe().Receive());
}

TEST_F(RngSession, DisconnectsOnAKickWithoutItsFd) {
  ASSERT_TRUE(fe().SendObj(Request::kSetVringKick, uint64_t{0}));  // no-fd bit clear, no fd
  EXPECT_FALSE(fe().Receive());
}

TEST_F(RngSession, DisconnectsOnGetVringBaseForAMissingRing) {
  ASSERT_TRUE(fe().SendObj(Request::kGetVringBase, VringState{7, 0}));
  EXPECT_FALSE(fe().Receive());
}

TEST_F(RngSession, DisconnectsOnAnOversizedConfigRequest) {
  ConfigHeader h{0, 300, 0};
  ASSERT_TRUE(fe().SendObj(Request::kGetConfig, h));
  EXPECT_FALSE(fe().Receive());
}

// ---- blk: the config space comes from the device (CONFIG protocol feature). ----

TEST(BlkSession, ServesTheConfigSpaceAndOffersConfig) {
  block::testing::TempDir dir;
  ASSERT_TRUE(dir.ok());
  const std::string path = dir.SparseFile("disk.img", 1 << 20);
  auto backend = block::OpenDiskBackend(path, {});
  ASSERT_TRUE(backend) << backend.error().message;
  auto loop = EventLoop::Create("vhost-test");
  ASSERT_TRUE(loop);
  ASSERT_TRUE((*loop)->Start());
  auto blk = virtio::Blk::Create(std::move(*backend), {}, **loop);
  ASSERT_TRUE(blk) << blk.error().message;
  {
    FakeFrontend fe(**blk, **loop);
    ASSERT_TRUE(fe.ok());
    auto protocol = fe.GetU64(Request::kGetProtocolFeatures);
    ASSERT_TRUE(protocol);
    EXPECT_TRUE(*protocol & kProtocolFConfig);
    struct {
      ConfigHeader header;
      uint8_t data[sizeof(virtio::BlkConfig)];
    } request{{0, sizeof(virtio::BlkConfig), 0}, {}};
    ASSERT_TRUE(fe.SendObj(Request::kGetConfig, request));
    auto reply = fe.Receive();
    ASSERT_TRUE(reply);
    ASSERT_EQ(reply->header.size, sizeof(request));
    EXPECT_TRUE(reply->header.flags & kFlagReply);
    virtio::BlkConfig config;
    std::memcpy(&config, reply->payload.data() + sizeof(ConfigHeader), sizeof(config));
    EXPECT_EQ(config.capacity, 2048u);
    // A read past the end of the config space gives zeros there, not garbage.
    struct {
      ConfigHeader header;
      uint8_t data[16];
    } tail{{sizeof(virtio::BlkConfig) - 8, 16, 0}, {}};
    ASSERT_TRUE(fe.SendObj(Request::kGetConfig, tail));
    reply = fe.Receive();
    ASSERT_TRUE(reply);
    ASSERT_EQ(reply->header.size, sizeof(tail));
    for (int i = 8; i < 16; ++i) EXPECT_EQ(reply->payload[sizeof(ConfigHeader) + i], 0);
    EXPECT_EQ(fe.GetU64(Request::kGetQueueNum), 1u);
  }
  blk->reset();
  (*loop)->Stop();
}

}  // namespace
}  // namespace vireo::vhost_user
