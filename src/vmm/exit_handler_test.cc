// The exit handler fed made-up exits, with no guest and no accelerator.
#include "vmm/exit_handler.h"

#include <gtest/gtest.h>

#include <array>
#include <vector>

namespace vireo {
namespace {

using accel::ExitReason;
using accel::VcpuExit;

class Latch : public BusDevice {
 public:
  std::string_view name() const override { return "latch"; }
  void Read(uint64_t, std::span<uint8_t> data) override {
    for (auto& b : data) b = value;
  }
  void Write(uint64_t, std::span<const uint8_t> data) override { writes.push_back(data[0]); }
  uint8_t value = 0x42;
  std::vector<uint8_t> writes;
};

class ExitHandlerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(pio_.Insert(latch_, 0x3f8, 8));
    ASSERT_TRUE(mmio_.Insert(latch_, 0xd0000000, 0x1000));
  }
  VcpuExit Io(uint16_t port, bool write, uint32_t size, uint32_t count = 1) {
    VcpuExit e;
    e.reason = ExitReason::kIo;
    e.address = port;
    e.is_write = write;
    e.size = size;
    e.count = count;
    e.data = std::span(buffer_).first(size * count);
    return e;
  }
  ExitAction Handle(const VcpuExit& e) { return HandleExit(e, context_); }

  std::shared_ptr<Latch> latch_ = std::make_shared<Latch>();
  Bus pio_{"pio"}, mmio_{"mmio"};
  StopController stop_;
  VcpuCounters counters_;
  ExitContext context_{pio_, mmio_, stop_, counters_};
  std::array<uint8_t, 64> buffer_{};
};

TEST_F(ExitHandlerTest, PortWriteReachesTheDevice) {
  buffer_[0] = 'x';
  EXPECT_EQ(Handle(Io(0x3f8, true, 1)), ExitAction::kContinue);
  EXPECT_EQ(latch_->writes, std::vector<uint8_t>{'x'});
  EXPECT_EQ(counters_.exits[static_cast<size_t>(ExitReason::kIo)], 1u);
}

TEST_F(ExitHandlerTest, StringOutputRepeatsForEachElement) {
  buffer_[0] = 'a', buffer_[1] = 'b', buffer_[2] = 'c';
  Handle(Io(0x3f8, true, 1, 3));
  EXPECT_EQ(latch_->writes, (std::vector<uint8_t>{'a', 'b', 'c'}));
}

TEST_F(ExitHandlerTest, UnclaimedPortReadsAllOnesAndIsCounted) {
  Handle(Io(0x1234, false, 4));
  EXPECT_EQ(buffer_[0], 0xff);
  EXPECT_EQ(buffer_[3], 0xff);
  Handle(Io(0x1234, true, 2));
  EXPECT_EQ(counters_.pio_unclaimed_reads, 1u);
  EXPECT_EQ(counters_.pio_unclaimed_writes, 1u);
}

TEST_F(ExitHandlerTest, MmioReadIsServedByTheMmioBus) {
  VcpuExit e;
  e.reason = ExitReason::kMmio;
  e.address = 0xd0000010;
  e.size = 4;
  e.data = std::span(buffer_).first(4);
  Handle(e);
  EXPECT_EQ(buffer_[0], 0x42);
  e.address = 0xe0000000;  // nothing there
  Handle(e);
  EXPECT_EQ(buffer_[0], 0xff);
  EXPECT_EQ(counters_.mmio_unclaimed_reads, 1u);
}

TEST_F(ExitHandlerTest, TripleFaultRequestsAReset) {
  VcpuExit e;
  e.reason = ExitReason::kShutdown;
  EXPECT_EQ(Handle(e), ExitAction::kStop);
  ASSERT_TRUE(stop_.stopped());
  EXPECT_EQ(stop_.outcome().reason, StopReason::kReset);
  EXPECT_EQ(stop_.outcome().detail, "triple-fault");
}

TEST_F(ExitHandlerTest, InternalErrorIsFatal) {
  VcpuExit e;
  e.reason = ExitReason::kInternalError;
  EXPECT_EQ(Handle(e), ExitAction::kFatal);
}

TEST_F(ExitHandlerTest, KickAfterStopLeavesTheLoop) {
  VcpuExit e;
  e.reason = ExitReason::kInterrupted;
  EXPECT_EQ(Handle(e), ExitAction::kContinue) << "a stray signal just re-enters the guest";
  stop_.Request({StopReason::kPowerOff, 0, "test"});
  EXPECT_EQ(Handle(e), ExitAction::kStop);
}

TEST(StopController, FirstRequestWins) {
  StopController stop;
  int kicks = 0;
  stop.set_on_stop([&] { ++kicks; });
  EXPECT_TRUE(stop.Request({StopReason::kDebugExit, 85, "debug-exit"}));
  EXPECT_FALSE(stop.Request({StopReason::kPowerOff, 0, "acpi"}));
  EXPECT_EQ(stop.outcome().exit_status, 85);
  EXPECT_EQ(kicks, 1);
}

TEST(DeviceVmControl, TagsResetsWithTheirSource) {
  StopController stop;
  DeviceVmControl control(stop, "i8042");
  control.RequestStop(StopKind::kReset, 0);
  EXPECT_EQ(stop.outcome().reason, StopReason::kReset);
  EXPECT_EQ(stop.outcome().detail, "i8042");
}

}  // namespace
}  // namespace vireo
