// Proves the snapshot encoding: the codec's bounds, the state file's round trip and every way
// a damaged or foreign file is refused, and the memory files of a full snapshot and a diff
// on top of it loading back to the same guest memory.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "vmm/snapshot/snapshot_files.h"
#include "vmm/snapshot/state_codec.h"
#include "vmm/snapshot/state_file.h"

namespace vireo::snapshot {
namespace {

TEST(StateCodec, RoundTripsEveryFieldKind) {
  StateWriter w;
  w.U8(0xab), w.U16(0x1234), w.U32(0xdeadbeef), w.U64(0x0123456789abcdefull), w.I64(-5);
  w.Bool(true), w.String("hello");
  const std::vector<uint8_t> bytes = w.Take();
  StateReader r(bytes);
  EXPECT_EQ(r.U8(), 0xab);
  EXPECT_EQ(r.U16(), 0x1234);
  EXPECT_EQ(r.U32(), 0xdeadbeefu);
  EXPECT_EQ(r.U64(), 0x0123456789abcdefull);
  EXPECT_EQ(r.I64(), -5);
  EXPECT_TRUE(r.Bool());
  EXPECT_EQ(r.String(16), "hello");
  EXPECT_TRUE(r.Finish("test"));
}

TEST(StateCodec, TruncationIsStickyAndReported) {
  const std::vector<uint8_t> bytes = {1, 2, 3};
  StateReader r(bytes);
  EXPECT_EQ(r.U64(), 0u);  // past the end: zero, and the reader is bad from now on
  EXPECT_EQ(r.U8(), 0u);
  auto status = r.Finish("section");
  ASSERT_FALSE(status);
  EXPECT_NE(status.error().message.find("truncated"), std::string::npos) << status.error().message;
}

TEST(StateCodec, LengthAboveItsBoundIsRefusedWithoutAllocating) {
  StateWriter w;
  w.U32(0xffffffffu);  // a 4 GiB string
  const auto bytes = w.Take();
  StateReader r(bytes);
  EXPECT_TRUE(r.Bytes(4096).empty());
  EXPECT_FALSE(r.Finish("x"));
}

TEST(StateCodec, TrailingBytesAreAnError) {
  const std::vector<uint8_t> bytes = {1, 2};
  StateReader r(bytes);
  r.U8();
  EXPECT_FALSE(r.Finish("x"));
}

SnapshotState SampleState() {
  SnapshotState s;
  s.config.cpus = 2;
  s.config.memory = 16ull << 20;
  s.config.kernel_path = "/boot/guest.elf";
  s.config.cmdline = "console=ttyS0";
  s.accelerator = "kvm";
  s.ram = {{0, 16ull << 20}};
  for (int i = 0; i < 2; ++i) {
    accel::VcpuSavedState v;
    v.cpuid = {{0x1, 0, 0, 1, 2, 3, 4}};
    v.regs.rip = 0x1000 + i;
    v.regs.rflags = 0x202;
    v.sregs.cs.selector = 0x10;
    v.sregs.cs.l = true;
    v.sregs.cr0 = 0x80000011;
    v.xsave.assign(4096, static_cast<uint8_t>(i));
    v.xcrs = {{0, 7}};
    v.msrs = {{0x10, 12345}, {0xc0000080, 0x500}};
    v.lapic.assign(1024, 0x5a);
    v.mp_state = accel::MpState::kHalted;
    v.events.nmi_masked = true;
    v.events.interrupt_shadow = 2;
    v.debug.dr7 = 0x400;
    s.vcpus.push_back(v);
  }
  s.vm.pic_master.imr = 0xfb;
  s.vm.ioapic.redirection[2] = 0x10030;
  s.vm.pit.channels[0].count = 0x10000;
  s.vm.pit.channels[0].count_load_time = -77;
  s.vm.clock_ns = 123456789;
  s.devices.com1.ier = 1;
  s.devices.com1.rx_fifo = {'a', 'b'};
  s.devices.rtc.cmos[0x10] = 0x42;
  s.devices.rtc.offset_seconds = -3600;
  s.devices.i8042.command_byte = 0x61;
  s.devices.pm.pm1_en = 0x100;
  s.devices.virtio.host_bridge.assign(256, 0x11);
  s.devices.virtio.pci_config_address = 0x80000810;
  virtio::TransportState t;
  t.status = 0x0f;
  t.driver_features = 1ull << 32;
  t.queue_select = 1;
  t.config_generation = 3;
  t.interrupt_status = 1;
  t.queues = {{.size = 16,
               .desc_table = 0x1000,
               .avail_ring = 0x2000,
               .used_ring = 0x3000,
               .ready = true,
               .next_avail = 7,
               .next_used = 6,
               .signalled_used = 5,
               .event_idx = true,
               .indirect_desc = false},
              {}};
  t.config_vector = 0;
  t.queue_vectors = {1, 0xffff};
  t.pci_config.assign(256, 0x22);
  t.msix.table = {{0xfee00000, 0, 0x41, 0}, {0xfee01000, 0, 0x42, 1}, {}};
  t.msix.pba = {0b100};
  s.devices.virtio.transports = {t, virtio::TransportState{}};
  return s;
}

TEST(StateFile, RoundTripsEverything) {
  const SnapshotState s = SampleState();
  const auto file = EncodeStateFile(s);
  auto back = DecodeStateFile(file);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(back->config.cpus, 2);
  EXPECT_EQ(back->config.kernel_path, s.config.kernel_path);
  EXPECT_EQ(back->config.cmdline, "console=ttyS0");
  ASSERT_EQ(back->vcpus.size(), 2u);
  EXPECT_EQ(back->vcpus[1].regs.rip, 0x1001u);
  EXPECT_TRUE(back->vcpus[0].sregs.cs.l);
  EXPECT_EQ(back->vcpus[1].xsave, s.vcpus[1].xsave);
  EXPECT_EQ(back->vcpus[0].msrs[1].value, 0x500u);
  EXPECT_EQ(back->vcpus[0].mp_state, accel::MpState::kHalted);
  EXPECT_EQ(back->vcpus[0].events.interrupt_shadow, 2);
  EXPECT_EQ(back->vm.pit.channels[0].count_load_time, -77);
  EXPECT_EQ(back->vm.ioapic.redirection[2], 0x10030u);
  EXPECT_EQ(back->devices.com1.rx_fifo, (std::vector<uint8_t>{'a', 'b'}));
  EXPECT_EQ(back->devices.rtc.offset_seconds, -3600);
  EXPECT_EQ(back->devices.pm.pm1_en, 0x100);
  EXPECT_EQ(back->devices.virtio.host_bridge, s.devices.virtio.host_bridge);
  EXPECT_EQ(back->devices.virtio.pci_config_address, 0x80000810u);
  EXPECT_EQ(back->devices.virtio.transports, s.devices.virtio.transports);
  // Encoding what was decoded gives the same bytes: nothing is lost on the way.
  EXPECT_EQ(EncodeStateFile(*back), file);
}

std::string ErrorOf(std::span<const uint8_t> file) {
  auto r = DecodeStateFile(file);
  return r ? std::string("(accepted)") : r.error().message;
}

TEST(StateFile, EveryTruncationIsRefused) {
  const auto file = EncodeStateFile(SampleState());
  for (size_t len = 0; len < file.size(); len += 97) {
    std::span<const uint8_t> cut(file.data(), len);
    EXPECT_FALSE(DecodeStateFile(cut)) << "accepted a file cut to " << len << " bytes";
  }
  EXPECT_NE(ErrorOf(std::span(file.data(), file.size() - 1)).find("truncated"), std::string::npos);
}

TEST(StateFile, CorruptionIsCaughtByTheChecksum) {
  auto file = EncodeStateFile(SampleState());
  file[kHeaderSize + 100] ^= 0x01;
  EXPECT_NE(ErrorOf(file).find("CRC-32"), std::string::npos) << ErrorOf(file);
}

TEST(StateFile, ForeignFilesAndOtherVersionsAreRefused) {
  std::vector<uint8_t> garbage(4096, 0x7f);
  EXPECT_NE(ErrorOf(garbage).find("not a Vireo snapshot"), std::string::npos);
  const std::string elf =
      "\x7f"
      "ELF";
  EXPECT_NE(ErrorOf({reinterpret_cast<const uint8_t*>(elf.data()), elf.size()})
                .find("not a Vireo snapshot"),
            std::string::npos);
  auto file = EncodeStateFile(SampleState());
  file[8] = 3;
  EXPECT_NE(ErrorOf(file).find("version 3"), std::string::npos) << ErrorOf(file);
  file[8] = 0;
  EXPECT_NE(ErrorOf(file).find("reads versions 1 to 2"), std::string::npos) << ErrorOf(file);
}

TEST(StateFile, HpetRecordAndThePitsSaveInstantRoundTrip) {
  SnapshotState s = SampleState();
  s.config.hpet = true;
  s.config.irqchip = IrqchipMode::kSplit;  // --irqchip split: restored in the same mode
  s.vm.saved_at_ns = 987654321;
  irqchip::HpetState& h = s.devices.hpet.emplace();
  h.config = 3;
  h.int_status = 2;
  h.counter = 0x123456789;
  h.timers[1] = {.config = 0x2a4e,
                 .comparator = 600,
                 .period = 300,
                 .from = 401,
                 .line_high = true,
                 .line = 21,
                 .line_legacy = false};
  const auto file = EncodeStateFile(s);
  auto back = DecodeStateFile(file);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_TRUE(back->config.hpet);
  EXPECT_EQ(back->config.irqchip, IrqchipMode::kSplit);
  EXPECT_EQ(back->vm.saved_at_ns, 987654321u);
  ASSERT_TRUE(back->devices.hpet);
  EXPECT_EQ(back->devices.hpet->counter, 0x123456789u);
  EXPECT_EQ(back->devices.hpet->timers[1].from, 401u);
  EXPECT_TRUE(back->devices.hpet->timers[1].line_high);
  EXPECT_EQ(back->devices.hpet->timers[1].line, 21u);
  EXPECT_EQ(EncodeStateFile(*back), file);

  s.devices.hpet.reset();  // --hpet on without the HPET's record
  EXPECT_NE(ErrorOf(EncodeStateFile(s)).find("an HPET without its state"), std::string::npos);
  s.config.hpet = false;
  s.devices.hpet.emplace();
  EXPECT_NE(ErrorOf(EncodeStateFile(s)).find("HPET state without an HPET"), std::string::npos);
}

// Version 1 is version 2 without the configuration's HPET flag, the VM's save instant and the
// device records: such a file (as Vireo wrote before) still restores.
TEST(StateFile, Version1FilesAreStillRead) {
  SnapshotState s = SampleState();
  s.accelerator = "kvm-v1-marker";
  s.vm.saved_at_ns = 0x1122334455667788;
  const auto v2 = EncodeStateFile(s);
  std::vector<uint8_t> payload(v2.begin() + kHeaderSize, v2.end());
  auto find = [&](std::span<const uint8_t> needle) {
    auto it = std::search(payload.begin(), payload.end(), needle.begin(), needle.end());
    EXPECT_NE(it, payload.end());
    return it;
  };
  const uint8_t saved_at[] = {0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11};
  auto at = find(saved_at);
  payload.erase(at, at + 8);
  const std::string marker = s.accelerator;
  // The HPET flag and the irqchip mode are the configuration's last two bytes, before the
  // accelerator's length and name.
  auto name = find({reinterpret_cast<const uint8_t*>(marker.data()), marker.size()});
  payload.erase(name - 6, name - 4);
  payload.resize(payload.size() - 4);  // no device records: their count, 0
  std::vector<uint8_t> v1(v2.begin(), v2.begin() + kHeaderSize);
  auto put32 = [&](size_t offset, uint32_t v) {
    for (int i = 0; i < 4; ++i) v1[offset + i] = static_cast<uint8_t>(v >> (8 * i));
  };
  put32(8, 1);
  put32(16, static_cast<uint32_t>(payload.size()));
  put32(20, static_cast<uint32_t>(
                crc32(crc32(0, Z_NULL, 0), payload.data(), static_cast<uInt>(payload.size()))));
  v1.insert(v1.end(), payload.begin(), payload.end());
  auto back = DecodeStateFile(v1);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_FALSE(back->config.hpet);
  EXPECT_EQ(back->config.irqchip, IrqchipMode::kKernel);
  EXPECT_FALSE(back->devices.hpet);
  EXPECT_EQ(back->vm.saved_at_ns, 0u);
  EXPECT_EQ(back->vm.clock_ns, s.vm.clock_ns);
  EXPECT_EQ(back->accelerator, marker);
  ASSERT_EQ(back->vcpus.size(), 2u);
  EXPECT_EQ(back->vcpus[1].regs.rip, 0x1001u);
  EXPECT_EQ(back->devices.virtio.transports.size(), 2u);
}

TEST(StateFile, ValuesOutOfRangeAreRefusedEvenWithAGoodChecksum) {
  SnapshotState s = SampleState();
  s.config.cpus = 3;  // three vCPUs, two states
  EXPECT_NE(ErrorOf(EncodeStateFile(s)).find("vCPU states"), std::string::npos);
  s = SampleState();
  s.vcpus[0].lapic.resize(10);
  EXPECT_NE(ErrorOf(EncodeStateFile(s)).find("LAPIC"), std::string::npos);
  s.vcpus[0].lapic.clear();  // an accelerator without a LAPIC page (the software CPU)
  EXPECT_TRUE(DecodeStateFile(EncodeStateFile(s)));
  // virtio: sizes beyond any device's are refused before anything is allocated for them
  // (the values themselves are checked when the transports restore them).
  s = SampleState();
  s.devices.virtio.host_bridge.resize(64);
  EXPECT_NE(ErrorOf(EncodeStateFile(s)).find("host bridge"), std::string::npos);
  s = SampleState();
  s.devices.virtio.transports[0].pci_config.resize(257);
  EXPECT_FALSE(DecodeStateFile(EncodeStateFile(s)));
  s = SampleState();
  s.devices.virtio.transports[0].msix.pba.resize(33);
  EXPECT_NE(ErrorOf(EncodeStateFile(s)).find("PBA"), std::string::npos)
      << ErrorOf(EncodeStateFile(s));
  s = SampleState();
  s.devices.virtio.transports.resize(65);
  EXPECT_NE(ErrorOf(EncodeStateFile(s)).find("virtio devices"), std::string::npos);
}

class SnapshotFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vireo-snapfiles-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(SnapshotFilesTest, FullThenDiffLoadsBackTheLatestMemory) {
  const std::vector<RamRange> ram = {{0, 1 << 20}, {4ull << 20, 1 << 20}};
  auto memory = GuestMemory::Create(ram, {});
  ASSERT_TRUE(memory);
  ASSERT_TRUE(memory->WriteObj<uint64_t>(0x2000, 0x1111));
  ASSERT_TRUE(memory->WriteObj<uint64_t>((4ull << 20) + 0x5000, 0x2222));
  SnapshotState s = SampleState();
  s.config.memory = 2 << 20;
  s.ram = ram;
  auto full = WriteSnapshot(dir_ + "/full", s, *memory);
  ASSERT_TRUE(full) << full.error().message;
  EXPECT_EQ(full->memory_bytes_written, 2 * kPageSize);  // zero pages are holes

  // The guest changes one page in each region; the diff holds exactly those.
  ASSERT_TRUE(memory->WriteObj<uint64_t>(0x3000, 0x3333));
  ASSERT_TRUE(memory->WriteObj<uint64_t>((4ull << 20) + 0x5000, 0x4444));
  s.type = SnapshotType::kDiff;
  s.parent = dir_ + "/full";
  s.dirty = {std::vector<uint64_t>(4), std::vector<uint64_t>(4)};
  s.dirty[0][0] = 1u << 3;
  s.dirty[1][0] = 1u << 5;
  auto diff = WriteSnapshot(dir_ + "/diff", s, *memory);
  ASSERT_TRUE(diff) << diff.error().message;
  EXPECT_EQ(diff->memory_bytes_written, 2 * kPageSize);

  auto loaded = LoadSnapshot(dir_ + "/diff");
  ASSERT_TRUE(loaded) << loaded.error().message;
  EXPECT_EQ(loaded->chain_length, 2u);
  EXPECT_EQ(loaded->memory->ReadObj<uint64_t>(0x2000), 0x1111u);
  EXPECT_EQ(loaded->memory->ReadObj<uint64_t>(0x3000), 0x3333u);
  EXPECT_EQ(loaded->memory->ReadObj<uint64_t>((4ull << 20) + 0x5000), 0x4444u);
  // The full snapshot alone still gives the older memory.
  auto base = LoadSnapshot(dir_ + "/full");
  ASSERT_TRUE(base) << base.error().message;
  EXPECT_EQ(base->memory->ReadObj<uint64_t>(0x3000), 0u);
  EXPECT_EQ(base->memory->ReadObj<uint64_t>((4ull << 20) + 0x5000), 0x2222u);
  // Restored memory is private: the guest's writes do not reach the snapshot.
  ASSERT_TRUE(base->memory->WriteObj<uint64_t>(0x2000, 0x9999));
  auto again = LoadSnapshot(dir_ + "/full");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->memory->ReadObj<uint64_t>(0x2000), 0x1111u);
}

TEST_F(SnapshotFilesTest, MemoryFileOfTheWrongSizeIsRefused) {
  const std::vector<RamRange> ram = {{0, 1 << 20}};
  auto memory = GuestMemory::Create(ram, {});
  ASSERT_TRUE(memory);
  SnapshotState s = SampleState();
  s.config.memory = 1 << 20;
  s.ram = ram;
  ASSERT_TRUE(WriteSnapshot(dir_, s, *memory));
  ASSERT_EQ(::truncate((dir_ + "/memory").c_str(), 512 << 10), 0);
  auto loaded = LoadSnapshot(dir_);
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find("bytes of RAM"), std::string::npos)
      << loaded.error().message;
}

TEST_F(SnapshotFilesTest, MissingSnapshotNamesThePath) {
  auto loaded = LoadSnapshot(dir_ + "/nope");
  ASSERT_FALSE(loaded);
  EXPECT_NE(loaded.error().message.find(dir_ + "/nope"), std::string::npos);
}

}  // namespace
}  // namespace vireo::snapshot
