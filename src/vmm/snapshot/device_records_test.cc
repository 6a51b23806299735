// Proves the state file's device records: virtio-net, -balloon and -vsock state round trips
// through a whole state file byte for byte, and hostile records (an unknown kind, a
// duplicate, a payload longer or shorter than its layout, counts and lengths beyond their
// bounds, records out of order) are refused naming the problem.
#include "vmm/snapshot/device_records.h"

#include <gtest/gtest.h>

#include "virtio/net/net.h"
#include "vmm/snapshot/state_file.h"

namespace vireo::snapshot {
namespace {

SnapshotState WithDevices() {
  SnapshotState s;
  s.config.cpus = 1;
  s.config.memory = 2ull << 20;
  s.config.nets = {{"tap0", "52:54:00:00:00:01"}, {"tap1", "52:54:00:00:00:02"}};
  s.config.balloon = true;
  s.config.vsock = VmConfig::Vsock{5, "/tmp/v.sock"};
  s.accelerator = "kvm";
  s.ram = {{0, 2ull << 20}};
  s.vcpus.resize(1);
  VirtioStates& v = s.devices.virtio;
  v.nets.resize(2);
  v.nets[0].mac = {0x52, 0x54, 0, 0, 0, 1};
  v.nets[0].status = 1;
  v.nets[0].rx_pending.assign(1412, 0xa5);
  v.nets[1].mac = {0x52, 0x54, 0, 0, 0, 2};
  v.balloon.emplace();
  v.balloon->num_pages = 1000;
  v.balloon->actual = 600;
  v.balloon->stats_head = 7;
  v.balloon->stats = {{4, 1u << 20}, {5, 4u << 20}};
  v.vsock = virtio::VsockSavedState{5};
  return s;
}

TEST(DeviceRecords, RoundTripInAStateFile) {
  const SnapshotState s = WithDevices();
  const auto file = EncodeStateFile(s);
  auto back = DecodeStateFile(file);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->devices.virtio.nets, s.devices.virtio.nets);
  EXPECT_EQ(back->devices.virtio.balloon, s.devices.virtio.balloon);
  EXPECT_EQ(back->devices.virtio.vsock, s.devices.virtio.vsock);
  EXPECT_EQ(EncodeStateFile(*back), file);
  // Without the devices: no records, and none come back.
  SnapshotState bare = s;
  bare.devices.virtio.nets.clear();
  bare.devices.virtio.balloon.reset();
  bare.devices.virtio.vsock.reset();
  back = DecodeStateFile(EncodeStateFile(bare));
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(back->devices.virtio.nets.empty());
  EXPECT_FALSE(back->devices.virtio.balloon);
  EXPECT_FALSE(back->devices.virtio.vsock);
}

// Decodes hand-made records; the error, or "" when accepted.
std::string Decode(StateWriter& w) {
  const std::vector<uint8_t> bytes = w.Take();
  StateReader r(bytes);
  DeviceStates d;
  GetDeviceRecords(r, d);
  auto finished = r.Finish("device records");
  return finished ? "" : finished.error().message;
}

void Record(StateWriter& w, uint16_t kind, const std::vector<uint8_t>& payload) {
  w.U16(kind);
  w.Bytes(payload);
}

std::vector<uint8_t> VsockPayload(uint64_t cid) {
  StateWriter p;
  p.U64(cid);
  return p.Take();
}

TEST(DeviceRecords, HostileRecordsAreRefused) {
  {
    StateWriter w;
    w.U32(1);
    Record(w, 9, {});
    EXPECT_NE(Decode(w).find("device record kind 9 is unknown to this vireo"), std::string::npos);
  }
  {
    StateWriter w;
    w.U32(2);
    Record(w, static_cast<uint16_t>(RecordKind::kVirtioVsock), VsockPayload(3));
    Record(w, static_cast<uint16_t>(RecordKind::kVirtioVsock), VsockPayload(3));
    EXPECT_NE(Decode(w).find("a second virtio-vsock record"), std::string::npos);
  }
  {
    StateWriter w;
    w.U32(1);
    auto payload = VsockPayload(3);
    payload.push_back(0);  // a byte its layout does not have
    Record(w, static_cast<uint16_t>(RecordKind::kVirtioVsock), payload);
    EXPECT_NE(Decode(w).find("the virtio-vsock record"), std::string::npos) << Decode(w);
  }
  {
    StateWriter w;
    w.U32(1);
    Record(w, static_cast<uint16_t>(RecordKind::kVirtioVsock), {1, 2, 3});  // short
    EXPECT_NE(Decode(w).find("truncated"), std::string::npos);
  }
  {
    StateWriter w;  // a balloon record claiming 1000 statistics
    w.U32(1);
    StateWriter p;
    p.U32(0), p.U32(0), p.Bool(false), p.U16(0), p.U32(1000);
    Record(w, static_cast<uint16_t>(RecordKind::kVirtioBalloon), p.Take());
    EXPECT_NE(Decode(w).find("balloon statistics"), std::string::npos) << Decode(w);
  }
  {
    StateWriter w;  // a net record with a pending frame beyond the largest packet
    w.U32(1);
    StateWriter p;
    for (int i = 0; i < 6; ++i) p.U8(0);
    p.U16(0);
    p.U32(static_cast<uint32_t>(virtio::Net::kMaxPacketBytes + 1));
    Record(w, static_cast<uint16_t>(RecordKind::kVirtioNet), p.Take());
    EXPECT_NE(Decode(w), "");
  }
  {
    StateWriter w;  // a vsock record before a net record: not the order they are written in
    w.U32(2);
    Record(w, static_cast<uint16_t>(RecordKind::kVirtioVsock), VsockPayload(3));
    StateWriter net;
    for (int i = 0; i < 6; ++i) net.U8(0);
    net.U16(0);
    net.U32(0);
    Record(w, static_cast<uint16_t>(RecordKind::kVirtioNet), net.Take());
    EXPECT_NE(Decode(w).find("kind 1 after kind 3"), std::string::npos) << Decode(w);
  }
  {
    StateWriter w;  // a stats head of 5 with its flag clear
    w.U32(1);
    StateWriter p;
    p.U32(0), p.U32(0), p.Bool(false), p.U16(5), p.U32(0);
    Record(w, static_cast<uint16_t>(RecordKind::kVirtioBalloon), p.Take());
    EXPECT_NE(Decode(w).find("without its flag"), std::string::npos) << Decode(w);
  }
  {
    StateWriter w;
    w.U32(100000);  // more records than any VM has
    EXPECT_NE(Decode(w).find("device records"), std::string::npos);
  }
}

}  // namespace
}  // namespace vireo::snapshot
