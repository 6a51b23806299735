#include "devices/legacy/serial_8250.h"

#include <gtest/gtest.h>

#include <array>
#include <thread>
#include <vector>

#include "devices/testing/fakes.h"

namespace vireo {
namespace {

using testing::FakeInterruptLine;
using testing::ReadByte;
using testing::WriteByte;

constexpr uint64_t kRbr = 0, kIer = 1, kIir = 2, kFcr = 2, kLcr = 3, kMcr = 4, kLsr = 5, kMsr = 6,
                   kScr = 7;
constexpr uint8_t kOut2 = 0x08, kLoop = 0x10;

class Serial8250Test : public ::testing::Test {
 protected:
  Serial8250Test()
      : irq_(std::make_shared<FakeInterruptLine>()),
        uart_(irq_, [this](std::span<const uint8_t> bytes) {
          output_.insert(output_.end(), bytes.begin(), bytes.end());
        }) {}

  std::shared_ptr<FakeInterruptLine> irq_;
  std::vector<uint8_t> output_;
  Serial8250 uart_;
};

TEST_F(Serial8250Test, ResetStateLooksLikeAnIdle16550) {
  EXPECT_EQ(ReadByte(uart_, kIir), 0x01);  // no interrupt pending, FIFOs off
  EXPECT_EQ(ReadByte(uart_, kLsr), 0x60);  // THRE | TEMT
  EXPECT_EQ(ReadByte(uart_, kMsr), 0xb0);  // DCD | DSR | CTS, no deltas
  EXPECT_TRUE(irq_->changes.empty());
}

TEST_F(Serial8250Test, TransmitsThroughCallback) {
  WriteByte(uart_, kRbr, 'h');
  WriteByte(uart_, kRbr, 'i');
  EXPECT_EQ(output_, (std::vector<uint8_t>{'h', 'i'}));
  EXPECT_EQ(uart_.tx_bytes(), 2u);
}

TEST_F(Serial8250Test, DivisorLatchIsSelectedByDlab) {
  WriteByte(uart_, kLcr, 0x83);  // DLAB, 8N1
  WriteByte(uart_, kRbr, 0x01);  // DLL: 115200 baud
  WriteByte(uart_, kIer, 0x00);  // DLM
  EXPECT_EQ(ReadByte(uart_, kRbr), 0x01);
  EXPECT_EQ(ReadByte(uart_, kIer), 0x00);
  EXPECT_TRUE(output_.empty());  // a DLL write is not a THR write
  WriteByte(uart_, kLcr, 0x03);
  WriteByte(uart_, kIer, 0x05);
  EXPECT_EQ(ReadByte(uart_, kIer), 0x05);
  WriteByte(uart_, kLcr, 0x83);
  EXPECT_EQ(ReadByte(uart_, kRbr), 0x01);  // latch kept its value
  EXPECT_EQ(ReadByte(uart_, kLcr), 0x83);
}

TEST_F(Serial8250Test, ScratchRegisterHoldsAByte) {
  WriteByte(uart_, kScr, 0xa5);
  EXPECT_EQ(ReadByte(uart_, kScr), 0xa5);
}

TEST_F(Serial8250Test, LoopbackFeedsTransmitterToReceiverAndModemLines) {
  WriteByte(uart_, kMcr, kLoop | 0x0f);  // DTR RTS OUT1 OUT2 looped
  EXPECT_EQ(ReadByte(uart_, kMsr) & 0xf0, 0xf0);
  WriteByte(uart_, kMcr, kLoop);
  const uint8_t msr = ReadByte(uart_, kMsr);
  EXPECT_EQ(msr & 0xf0, 0x00);
  EXPECT_EQ(msr & 0x0f, 0x0f);                    // DCTS DDSR TERI DDCD
  EXPECT_EQ(ReadByte(uart_, kMsr) & 0x0f, 0x00);  // deltas clear on read

  WriteByte(uart_, kRbr, 'x');
  EXPECT_TRUE(output_.empty());
  EXPECT_EQ(ReadByte(uart_, kLsr) & 0x01, 0x01);
  EXPECT_EQ(ReadByte(uart_, kRbr), 'x');
  EXPECT_EQ(ReadByte(uart_, kLsr) & 0x01, 0x00);
}

TEST_F(Serial8250Test, ThreInterruptRaisesAndClears) {
  WriteByte(uart_, kMcr, kOut2);
  WriteByte(uart_, kIer, 0x02);  // ETBEI: THR is empty, so pending at once
  EXPECT_TRUE(irq_->level);
  EXPECT_EQ(ReadByte(uart_, kIir), 0x02);
  EXPECT_FALSE(irq_->level);  // the IIR read cleared it
  EXPECT_EQ(ReadByte(uart_, kIir), 0x01);

  WriteByte(uart_, kRbr, 'a');  // THR write: byte leaves, THR empty again
  EXPECT_TRUE(irq_->level);
  WriteByte(uart_, kIer, 0x00);
  EXPECT_FALSE(irq_->level);
  EXPECT_EQ(irq_->changes, (std::vector<bool>{true, false, true, false}));
}

TEST_F(Serial8250Test, LineIsGatedByOut2AndChangesOnlyOnEdges) {
  WriteByte(uart_, kIer, 0x02);
  EXPECT_TRUE(irq_->changes.empty());  // pending but OUT2 clear
  EXPECT_EQ(ReadByte(uart_, kIir), 0x02);
  WriteByte(uart_, kIer, 0x00);
  WriteByte(uart_, kIer, 0x02);
  WriteByte(uart_, kMcr, kOut2);
  WriteByte(uart_, kMcr, kOut2 | 0x03);  // still pending: no second SetLevel(true)
  WriteByte(uart_, kScr, 0);
  EXPECT_EQ(irq_->changes, (std::vector<bool>{true}));
}

TEST_F(Serial8250Test, ReceivedDataInterruptFollowsTheFifo) {
  WriteByte(uart_, kMcr, kOut2);
  WriteByte(uart_, kIer, 0x01);  // ERBFI
  EXPECT_FALSE(irq_->level);
  const std::array<uint8_t, 2> input{'o', 'k'};
  EXPECT_EQ(uart_.EnqueueInput(input), 2u);
  EXPECT_TRUE(irq_->level);
  EXPECT_EQ(ReadByte(uart_, kIir), 0x04);
  EXPECT_EQ(ReadByte(uart_, kRbr), 'o');
  EXPECT_TRUE(irq_->level);
  EXPECT_EQ(ReadByte(uart_, kRbr), 'k');
  EXPECT_FALSE(irq_->level);
  EXPECT_EQ(ReadByte(uart_, kIir), 0x01);
  EXPECT_EQ(irq_->changes, (std::vector<bool>{true, false}));
}

TEST_F(Serial8250Test, InterruptPriorityLineStatusThenDataThenThre) {
  WriteByte(uart_, kMcr, kOut2);
  WriteByte(uart_, kIer, 0x0f);
  std::vector<uint8_t> flood(Serial8250::kRxFifoSize + 1, 'z');
  uart_.EnqueueInput(flood);  // overrun: OE set
  EXPECT_EQ(ReadByte(uart_, kIir), 0x06);
  EXPECT_EQ(ReadByte(uart_, kLsr) & 0x03, 0x03);  // OE | DR; reading clears OE
  EXPECT_EQ(ReadByte(uart_, kIir), 0x04);
  WriteByte(uart_, kFcr, 0x03);            // enable FIFOs, reset receive FIFO
  EXPECT_EQ(ReadByte(uart_, kIir), 0xc2);  // THRE, FIFOs enabled
  EXPECT_EQ(ReadByte(uart_, kIir), 0xc1);
  EXPECT_FALSE(irq_->level);
}

TEST_F(Serial8250Test, ModemStatusInterruptClearsOnMsrRead) {
  WriteByte(uart_, kIer, 0x08);
  WriteByte(uart_, kMcr, kOut2);
  EXPECT_EQ(ReadByte(uart_, kIir), 0x01);
  WriteByte(uart_, kMcr, kLoop | kOut2);  // lines change: deltas set (line gated in loop)
  EXPECT_EQ(ReadByte(uart_, kIir), 0x00);
  ReadByte(uart_, kMsr);
  EXPECT_EQ(ReadByte(uart_, kIir), 0x01);
}

TEST_F(Serial8250Test, FifoOverflowIsCountedNotFatal) {
  std::vector<uint8_t> big(Serial8250::kRxFifoSize + 100, 'q');
  EXPECT_EQ(uart_.EnqueueInput(big), Serial8250::kRxFifoSize);
  EXPECT_EQ(uart_.input_space(), 0u);
  EXPECT_EQ(uart_.rx_dropped(), 100u);
  const std::array<uint8_t, 1> more{'r'};
  EXPECT_EQ(uart_.EnqueueInput(more), 0u);
  EXPECT_EQ(uart_.rx_dropped(), 101u);
  EXPECT_EQ(ReadByte(uart_, kRbr), 'q');
  EXPECT_EQ(uart_.input_space(), 1u);
  // Loopback into a full FIFO is dropped the same way.
  const std::array<uint8_t, 1> one{'s'};
  uart_.EnqueueInput(one);
  WriteByte(uart_, kMcr, kLoop);
  WriteByte(uart_, kRbr, 't');
  EXPECT_EQ(uart_.rx_dropped(), 102u);
}

TEST_F(Serial8250Test, ReadingAnEmptyReceiverIsHarmless) {
  EXPECT_EQ(ReadByte(uart_, kRbr), 0);
  std::array<uint8_t, 4> wide{};
  uart_.Read(6, wide);  // MSR, SCR, then past the end
  EXPECT_EQ(wide[2], 0xff);
  EXPECT_EQ(wide[3], 0xff);
}

TEST(Serial8250Threads, HostInputAndGuestReadsInterleaveSafely) {
  auto irq = std::make_shared<FakeInterruptLine>();
  Serial8250 uart(irq, nullptr);
  constexpr size_t kBytes = 20000;
  std::thread host([&] {
    size_t sent = 0;
    for (int spins = 0; sent < kBytes && spins < 10'000'000; ++spins) {
      if (uart.input_space() == 0) continue;  // a well-behaved host waits instead of dropping
      const uint8_t byte = static_cast<uint8_t>(sent);
      sent += uart.EnqueueInput(std::span<const uint8_t>(&byte, 1));
    }
  });
  size_t received = 0;
  uint8_t expected = 0;
  bool in_order = true;
  for (int spins = 0; received < kBytes && spins < 10'000'000; ++spins) {
    if (ReadByte(uart, 5) & 0x01) {
      in_order &= ReadByte(uart, 0) == expected++;
      ++received;
    }
  }
  host.join();
  EXPECT_EQ(received, kBytes);
  EXPECT_TRUE(in_order);
  EXPECT_EQ(uart.rx_dropped(), 0u);
}

// Snapshots: a second UART given the first's state reads the same registers and FIFO and
// drives its interrupt line to match; a FIFO larger than the device's is refused.
TEST_F(Serial8250Test, StateRestoresIntoAFreshUart) {
  WriteByte(uart_, kLcr, 0x03);
  WriteByte(uart_, kScr, 0x5a);
  WriteByte(uart_, kMcr, kOut2);
  WriteByte(uart_, kIer, 0x01);  // received-data interrupt
  const uint8_t input[] = {'h', 'i'};
  ASSERT_EQ(uart_.EnqueueInput(input), 2u);
  ASSERT_TRUE(irq_->level);
  const Serial8250State saved = uart_.state();
  EXPECT_EQ(saved.rx_fifo, (std::vector<uint8_t>{'h', 'i'}));

  auto irq = std::make_shared<FakeInterruptLine>();
  Serial8250 copy(irq, [](std::span<const uint8_t>) {});
  ASSERT_TRUE(copy.RestoreState(saved));
  EXPECT_TRUE(irq->level);
  EXPECT_EQ(ReadByte(copy, kLcr), 0x03);
  EXPECT_EQ(ReadByte(copy, kScr), 0x5a);
  EXPECT_EQ(ReadByte(copy, kRbr), 'h');
  EXPECT_EQ(ReadByte(copy, kRbr), 'i');
  EXPECT_FALSE(irq->level);

  Serial8250State too_big = saved;
  too_big.rx_fifo.resize(Serial8250::kRxFifoSize + 1);
  EXPECT_FALSE(copy.RestoreState(too_big));
}

}  // namespace
}  // namespace vireo
