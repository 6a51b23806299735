#include "devices/irqchip/pit.h"

#include <gtest/gtest.h>

#include "devices/testing/fakes.h"

namespace vireo::irqchip {
namespace {

// ns for `ticks` PIT clocks, rounded up (the first instant NsToTicks reaches it).
uint64_t Ns(uint64_t ticks) { return (ticks * 1'000'000'000 + Pit::kHz - 1) / Pit::kHz; }

class PitTest : public ::testing::Test {
 protected:
  void Program(int counter, uint8_t mode, uint16_t count) {
    pit_.Write(3, static_cast<uint8_t>((counter << 6) | 0x30 | (mode << 1)));
    pit_.Write(static_cast<uint16_t>(counter), count & 0xff);
    pit_.Write(static_cast<uint16_t>(counter), count >> 8);
  }
  int Pulses() const {
    int n = 0;
    for (bool level : irq_.changes) n += level;
    return n;
  }

  ManualClock clock_;
  testing::FakeInterruptLine irq_;
  Pit pit_{clock_, irq_};
};

TEST_F(PitTest, Mode2RateGeneratorPulsesIrq0EachPeriod) {
  Program(0, 2, 11932);  // 100 Hz
  EXPECT_TRUE(pit_.out(0));
  EXPECT_EQ(pit_.NextEventNs(), clock_.NowNs() + Ns(11932));
  clock_.Advance(Ns(11931) - 1);
  pit_.Poll();
  EXPECT_EQ(Pulses(), 0);
  clock_.Advance(1);  // count reached 1: OUT low for one clock
  EXPECT_FALSE(pit_.out(0));
  EXPECT_EQ(pit_.count(0), 1);
  clock_.Advance(Ns(11932) - Ns(11931));
  EXPECT_TRUE(pit_.out(0));
  pit_.Poll();
  EXPECT_EQ(Pulses(), 1);
  EXPECT_EQ(pit_.count(0), 11932);  // reloaded
  pit_.Poll();
  EXPECT_EQ(Pulses(), 1);
  // Several periods missed: one coalesced pulse, the next event on the period grid.
  clock_.Advance(Ns(3 * 11932));
  pit_.Poll();
  EXPECT_EQ(Pulses(), 2);
  EXPECT_GT(pit_.NextEventNs(), clock_.NowNs());
}

TEST_F(PitTest, Mode0InterruptOnTerminalCountOnce) {
  Program(0, 0, 1000);
  EXPECT_FALSE(pit_.out(0));
  clock_.Advance(Ns(400));
  EXPECT_EQ(pit_.count(0), 600);
  clock_.Advance(Ns(1000) - Ns(400));
  EXPECT_TRUE(pit_.out(0));
  pit_.Poll();
  EXPECT_EQ(Pulses(), 1);
  clock_.Advance(Ns(70000));
  pit_.Poll();
  EXPECT_EQ(Pulses(), 1);  // stays high, no second interrupt
  EXPECT_EQ(pit_.NextEventNs(), UINT64_MAX);
  // The control word alone sets OUT low and stops the counter.
  pit_.Write(3, 0x30);
  EXPECT_FALSE(pit_.out(0));
  EXPECT_EQ(pit_.NextEventNs(), UINT64_MAX);
}

TEST_F(PitTest, Mode3SquareWaveAndMode4Strobe) {
  Program(0, 3, 100);
  clock_.Advance(Ns(49));
  EXPECT_TRUE(pit_.out(0));
  EXPECT_EQ(pit_.count(0), 2);
  clock_.Advance(Ns(50) - Ns(49));
  EXPECT_FALSE(pit_.out(0));
  clock_.Advance(Ns(100) - Ns(50));
  EXPECT_TRUE(pit_.out(0));
  pit_.Poll();
  EXPECT_EQ(Pulses(), 1);

  Program(0, 4, 10);
  clock_.Advance(Ns(10));
  EXPECT_FALSE(pit_.out(0));  // the strobe: low for one clock at terminal count
  clock_.Advance(Ns(11) - Ns(10));
  EXPECT_TRUE(pit_.out(0));
  pit_.Poll();
  EXPECT_EQ(Pulses(), 2);
}

TEST_F(PitTest, CounterLatchHoldsValueUntilBothBytesRead) {
  Program(0, 2, 5000);
  clock_.Advance(Ns(1234));
  pit_.Write(3, 0x00);  // latch counter 0
  clock_.Advance(Ns(2000));
  const uint16_t expected = 5000 - 1234;
  EXPECT_EQ(pit_.Read(0), expected & 0xff);
  EXPECT_EQ(pit_.Read(0), expected >> 8);
  // Unlatched now: live value.
  const uint16_t live = pit_.count(0);
  EXPECT_EQ(pit_.Read(0), live & 0xff);
  // LSB-only access mode.
  pit_.Write(3, 0x14);  // counter 0, LSB only, mode 2
  pit_.Write(0, 0x80);
  EXPECT_EQ(pit_.count(0), 0x80);
  EXPECT_EQ(pit_.Read(0), 0x80);
  EXPECT_EQ(pit_.Read(0), 0x80);
}

TEST_F(PitTest, ReadBackStatusAndCount) {
  Program(2, 0, 300);   // gate 2 is low after reset: mode 0 holds
  pit_.Write(3, 0xc8);  // read-back count and status of counter 2
  // Status: OUT low, count loaded, LSB/MSB, mode 0, binary.
  EXPECT_EQ(pit_.Read(2), 0x30);
  EXPECT_EQ(pit_.Read(2), 300 & 0xff);
  EXPECT_EQ(pit_.Read(2), 300 >> 8);
  pit_.Write(3, 0xb0);  // new control word: null count until loaded
  pit_.Write(3, 0xe8);  // status only
  EXPECT_EQ(pit_.Read(2) & 0x40, 0x40);
  EXPECT_EQ(pit_.Read(3), 0xff);  // the control register is write-only
}

TEST_F(PitTest, PortBGatesCounter2AndShowsOut2) {
  // The guest kit's TSC calibration: gate on, mode 0, count 11932, poll bit 5.
  pit_.WritePortB(0x01);
  Program(2, 0, 11932);
  EXPECT_EQ(pit_.ReadPortB() & 0x21, 0x01);
  clock_.Advance(Ns(11932));
  EXPECT_EQ(pit_.ReadPortB() & 0x20, 0x20);
  // Gate low in mode 0 holds the count; high again resumes it.
  Program(2, 0, 1000);
  clock_.Advance(Ns(100));
  pit_.WritePortB(0x00);
  clock_.Advance(Ns(5000));
  EXPECT_EQ(pit_.count(2), 900);
  EXPECT_EQ(pit_.ReadPortB() & 0x20, 0);
  pit_.WritePortB(0x01);
  clock_.Advance(Ns(900));
  EXPECT_EQ(pit_.ReadPortB() & 0x20, 0x20);
  // Mode 1: the gate's rising edge triggers the one-shot.
  pit_.WritePortB(0x00);
  Program(2, 1, 50);
  clock_.Advance(Ns(100));
  EXPECT_TRUE(pit_.out(2));
  pit_.WritePortB(0x01);
  EXPECT_FALSE(pit_.out(2));
  clock_.Advance(Ns(50));
  EXPECT_TRUE(pit_.out(2));
  // The refresh bit toggles with time; bits 2-3 read back as written.
  pit_.WritePortB(0x0d);
  const uint8_t a = pit_.ReadPortB();
  clock_.Advance(15085);
  EXPECT_NE(a & 0x10, pit_.ReadPortB() & 0x10);
  EXPECT_EQ(a & 0x0f, 0x0d);
  // Counter 2 never raises IRQ 0.
  EXPECT_EQ(Pulses(), 0);
}

// An HPET in legacy replacement disconnects OUT0 from IRQ 0: no pulses and no wake-ups while
// off, the count goes on, and reconnecting raises nothing for the periods in between.
TEST_F(PitTest, DisconnectedIrq0StaysQuietAndResumesOnTheGrid) {
  Program(0, 2, 1000);
  pit_.SetIrqEnabled(false);
  EXPECT_EQ(pit_.NextEventNs(), UINT64_MAX);
  clock_.Advance(Ns(2500));
  pit_.Poll();
  EXPECT_EQ(Pulses(), 0);
  EXPECT_EQ(pit_.count(0), 500);  // still counting
  pit_.SetIrqEnabled(true);
  pit_.Poll();
  EXPECT_EQ(Pulses(), 0);
  EXPECT_EQ(pit_.NextEventNs(), clock_.NowNs() - Ns(2500) + Ns(3000));
  clock_.Advance(Ns(3000) - Ns(2500));
  pit_.Poll();
  EXPECT_EQ(Pulses(), 1);
}

}  // namespace
}  // namespace vireo::irqchip
