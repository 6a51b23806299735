#include "devices/irqchip/pic.h"

#include <gtest/gtest.h>

namespace vireo::irqchip {
namespace {

class PicTest : public ::testing::Test {
 protected:
  // The BIOS/Linux sequence: ICW1 edge + ICW4, bases 0x20/0x28, cascade on IRQ 2, 8086 mode.
  void Init(uint8_t icw4 = 0x01) {
    pic_.Write(0, 0, 0x11);
    pic_.Write(0, 1, 0x20);
    pic_.Write(0, 1, 0x04);
    pic_.Write(0, 1, icw4);
    pic_.Write(1, 0, 0x11);
    pic_.Write(1, 1, 0x28);
    pic_.Write(1, 1, 0x02);
    pic_.Write(1, 1, icw4);
    pic_.Write(0, 1, 0x00);
    pic_.Write(1, 1, 0x00);
  }
  void Eoi(int chip) { pic_.Write(chip, 0, 0x20); }
  DualPic pic_;
};

TEST_F(PicTest, InitialisationMaskAndEdgeDelivery) {
  Init();
  EXPECT_FALSE(pic_.Output());
  pic_.Write(0, 1, 0x01);  // OCW1: mask IRQ 0
  EXPECT_EQ(pic_.Read(0, 1), 0x01);
  pic_.SetIrq(0, true);
  EXPECT_FALSE(pic_.Output());  // masked but latched in IRR
  EXPECT_EQ(pic_.irr(0), 0x01);
  pic_.Write(0, 1, 0x00);
  EXPECT_TRUE(pic_.Output());
  EXPECT_EQ(pic_.Acknowledge(), 0x20);
  EXPECT_EQ(pic_.isr(0), 0x01);
  EXPECT_FALSE(pic_.Output());
  pic_.SetIrq(0, true);  // still high: no new edge
  Eoi(0);
  EXPECT_FALSE(pic_.Output());
  pic_.SetIrq(0, false);
  pic_.SetIrq(0, true);
  EXPECT_EQ(pic_.Acknowledge(), 0x20);
}

TEST_F(PicTest, PriorityNestingAndReadIrrIsr) {
  Init();
  pic_.SetIrq(4, true);
  EXPECT_EQ(pic_.Acknowledge(), 0x24);
  pic_.SetIrq(5, true);  // lower priority than IRQ 4 in service
  EXPECT_FALSE(pic_.Output());
  pic_.SetIrq(1, true);  // higher: nests
  EXPECT_TRUE(pic_.Output());
  EXPECT_EQ(pic_.Acknowledge(), 0x21);
  pic_.Write(0, 0, 0x0b);  // OCW3: read ISR
  EXPECT_EQ(pic_.Read(0, 0), 0x12);
  pic_.Write(0, 0, 0x0a);  // read IRR
  EXPECT_EQ(pic_.Read(0, 0), 0x20);
  Eoi(0);  // non-specific: ends IRQ 1
  EXPECT_EQ(pic_.isr(0), 0x10);
  pic_.Write(0, 0, 0x64);  // specific EOI for IRQ 4
  EXPECT_EQ(pic_.isr(0), 0x00);
  EXPECT_EQ(pic_.Acknowledge(), 0x25);
}

TEST_F(PicTest, CascadedSlaveAndSpuriousIrqs) {
  Init();
  EXPECT_EQ(pic_.Acknowledge(), 0x27);  // nothing pending: spurious IRQ 7
  EXPECT_EQ(pic_.isr(0), 0);
  pic_.SetIrq(12, true);
  EXPECT_TRUE(pic_.Output());
  EXPECT_EQ(pic_.Acknowledge(), 0x2c);
  EXPECT_EQ(pic_.isr(0), 0x04);
  EXPECT_EQ(pic_.isr(1), 0x10);
  // Fully nested mode (no SFNM): a higher slave IRQ waits while the master's IRQ 2 is in
  // service, and comes through after both EOIs.
  pic_.SetIrq(9, true);
  EXPECT_FALSE(pic_.Output());
  Eoi(1);
  Eoi(0);
  EXPECT_TRUE(pic_.Output());
  EXPECT_EQ(pic_.Acknowledge(), 0x29);
  Eoi(1);
  Eoi(0);
  // A slave request withdrawn before INTA: the master's latched IRQ 2 edge finds nothing on
  // the slave, which answers with its spurious IRQ 15 (and no slave ISR bit).
  pic_.WriteElcr(1, 0x08);  // IRQ 11 level
  pic_.SetIrq(11, true);
  pic_.SetIrq(11, false);
  EXPECT_TRUE(pic_.Output());
  EXPECT_EQ(pic_.Acknowledge(), 0x2f);
  EXPECT_EQ(pic_.isr(1), 0);
  Eoi(0);
  EXPECT_FALSE(pic_.Output());
}

TEST_F(PicTest, LevelTriggeredViaElcrStaysPendingWhileAsserted) {
  Init();
  pic_.WriteElcr(0, 0xff);
  EXPECT_EQ(pic_.ReadElcr(0), 0xf8);  // IRQs 0-2 cannot be level
  pic_.SetIrq(5, true);
  EXPECT_EQ(pic_.Acknowledge(), 0x25);
  Eoi(0);
  EXPECT_TRUE(pic_.Output());  // line still high: asks again
  pic_.SetIrq(5, false);
  EXPECT_FALSE(pic_.Output());
}

TEST_F(PicTest, AutoEoiPollModeSpecialMaskAndRotation) {
  Init(0x03);  // ICW4 with AEOI
  pic_.SetIrq(3, true);
  EXPECT_EQ(pic_.Acknowledge(), 0x23);
  EXPECT_EQ(pic_.isr(0), 0);  // auto-EOI: nothing in service
  // Poll mode: the read acknowledges.
  Init();
  pic_.SetIrq(6, true);
  pic_.Write(0, 0, 0x0c);
  EXPECT_EQ(pic_.Read(0, 0), 0x86);
  EXPECT_EQ(pic_.isr(0), 0x40);
  pic_.Write(0, 0, 0x0c);
  EXPECT_EQ(pic_.Read(0, 0), 0x00);  // nothing else pending
  // Special mask mode: masking IRQ 6 in service lets lower IRQ 7 through.
  pic_.SetIrq(7, true);
  EXPECT_FALSE(pic_.Output());
  pic_.Write(0, 1, 0x40);
  pic_.Write(0, 0, 0x68);  // OCW3: set special mask
  EXPECT_TRUE(pic_.Output());
  pic_.Write(0, 0, 0x48);  // reset special mask
  EXPECT_FALSE(pic_.Output());
  // Rotate on non-specific EOI: IRQ 6 becomes the lowest, so IRQ 7 outranks IRQ 0 next.
  pic_.Write(0, 1, 0x00);
  pic_.Write(0, 0, 0xa0);
  EXPECT_EQ(pic_.isr(0), 0x00);
  pic_.SetIrq(0, true);
  EXPECT_EQ(pic_.Acknowledge(), 0x27);
  // Set priority: IRQ 7 lowest again, so IRQ 0 is first.
  pic_.Write(0, 0, 0xc7);
  EXPECT_EQ(pic_.Acknowledge(), 0x20);
}

}  // namespace
}  // namespace vireo::irqchip
