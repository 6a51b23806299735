#include "devices/legacy/i8042.h"

#include <gtest/gtest.h>

#include "devices/testing/fakes.h"

namespace vireo {
namespace {

using testing::FakeInterruptLine;
using testing::FakeVmControl;
using testing::ReadByte;
using testing::WriteByte;

constexpr uint8_t kObf = 0x01, kSys = 0x04, kAuxData = 0x20;

class I8042Test : public ::testing::Test {
 protected:
  I8042Test()
      : irq_(std::make_shared<FakeInterruptLine>()),
        kbc_(I8042::Create(irq_, vm_)),
        data_(kbc_->data_port()),
        command_(kbc_->command_port()) {}

  uint8_t Status() { return ReadByte(*command_, 0); }
  uint8_t Data() { return ReadByte(*data_, 0); }
  void Command(uint8_t c) { WriteByte(*command_, 0, c); }
  void DataWrite(uint8_t v) { WriteByte(*data_, 0, v); }

  FakeVmControl vm_;
  std::shared_ptr<FakeInterruptLine> irq_;
  std::shared_ptr<I8042> kbc_;
  std::shared_ptr<BusDevice> data_;
  std::shared_ptr<BusDevice> command_;
};

TEST_F(I8042Test, SelfTestAndInterfaceTest) {
  EXPECT_EQ(Status() & (kObf | kSys), kSys);
  Command(0xaa);
  EXPECT_EQ(Status() & kObf, kObf);
  EXPECT_EQ(Data(), 0x55);
  EXPECT_EQ(Status() & kObf, 0);
  Command(0xab);
  EXPECT_EQ(Data(), 0x00);
  EXPECT_TRUE(vm_.requests.empty());
}

TEST_F(I8042Test, CommandByteReadWriteAndPortEnables) {
  Command(0x20);
  EXPECT_EQ(Data(), 0x65);
  Command(0x60);
  DataWrite(0x47);  // KBDINT, SYS, XLATE; AUX enabled
  EXPECT_EQ(kbc_->command_byte(), 0x47);
  Command(0xa7);
  Command(0xad);
  Command(0x20);
  EXPECT_EQ(Data(), 0x47 | 0x20 | 0x10);
  Command(0xa8);
  Command(0xae);
  EXPECT_EQ(kbc_->command_byte(), 0x47);
  Command(0x60);
  DataWrite(0x00);  // SYS cleared in the command byte shows in the status register
  EXPECT_EQ(Status() & kSys, 0);
}

TEST_F(I8042Test, Irq1FollowsOutputBufferWhenEnabled) {
  Command(0xaa);
  EXPECT_TRUE(irq_->level);
  Data();
  EXPECT_FALSE(irq_->level);
  Command(0x60);
  DataWrite(0x64);  // KBDINT off
  Command(0xaa);
  EXPECT_FALSE(irq_->level);
  EXPECT_EQ(irq_->changes, (std::vector<bool>{true, false}));
}

TEST_F(I8042Test, PulseResetRequestsReset) {
  Command(0xfe);
  ASSERT_EQ(vm_.requests.size(), 1u);
  EXPECT_EQ(vm_.requests[0].kind, StopKind::kReset);
  EXPECT_EQ(vm_.requests[0].exit_status, 0);
  Command(0xff);  // pulses nothing
  EXPECT_EQ(vm_.requests.size(), 1u);
}

TEST_F(I8042Test, OutputPortBitZeroClearResets) {
  Command(0xd0);
  EXPECT_EQ(Data() & 0x01, 0x01);
  Command(0xd1);
  DataWrite(0x03);  // A20 on, reset high: no reset
  EXPECT_TRUE(vm_.requests.empty());
  Command(0xd1);
  DataWrite(0x02);
  ASSERT_EQ(vm_.requests.size(), 1u);
  EXPECT_EQ(vm_.requests[0].kind, StopKind::kReset);
}

TEST_F(I8042Test, AbsentKeyboardAndMouseAnswerResend) {
  DataWrite(0xf2);  // keyboard GETID
  EXPECT_EQ(Status() & (kObf | kAuxData), kObf);
  EXPECT_EQ(Data(), 0xfe);
  Command(0xd4);
  DataWrite(0xf2);  // mouse GETID
  EXPECT_EQ(Status() & (kObf | kAuxData), kObf | kAuxData);
  EXPECT_EQ(Data(), 0xfe);
  Command(0xa9);
  EXPECT_EQ(Data(), 0x02);
}

TEST_F(I8042Test, UnknownCommandsAreCountedAndResetRestoresPowerOnState) {
  Command(0xc8);
  EXPECT_EQ(kbc_->unknown_commands(), 1u);
  Command(0x60);
  DataWrite(0x00);
  kbc_->Reset();
  EXPECT_EQ(kbc_->command_byte(), 0x65);
  EXPECT_EQ(Status() & kSys, kSys);
}

TEST_F(I8042Test, AdaptersKeepControllerAlive) {
  std::weak_ptr<I8042> weak = kbc_;
  kbc_.reset();
  EXPECT_FALSE(weak.expired());
  Command(0xaa);
  EXPECT_EQ(Data(), 0x55);
}

// Snapshots: the command byte and a waiting output byte carry over, with IRQ 1; an unknown
// pending command is refused.
TEST_F(I8042Test, StateRestoresIntoAFreshController) {
  I8042State s;
  s.status = 0x01 | 0x04 | 0x10;  // output buffer full, SYS, unlocked
  s.command_byte = 0x01 | 0x04;   // keyboard interrupt enabled
  s.output_port = 0x03;
  s.output_buffer = 0xfa;
  FakeVmControl vm;
  auto irq = std::make_shared<FakeInterruptLine>();
  auto kbc = I8042::Create(irq, vm);
  ASSERT_TRUE(kbc->RestoreState(s));
  EXPECT_TRUE(irq->level);
  EXPECT_EQ(kbc->command_byte(), 0x05);
  EXPECT_EQ(kbc->ReadData(), 0xfa);
  const I8042State back = kbc->state();
  EXPECT_EQ(back.output_port, 0x03);
  s.pending = 9;
  EXPECT_FALSE(kbc->RestoreState(s));
}

}  // namespace
}  // namespace vireo
