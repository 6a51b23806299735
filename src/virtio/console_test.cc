#include "virtio/console.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "virtio/testing/driver.h"

namespace vireo::virtio {
namespace {

using testing::RecordingInterrupt;
using testing::TestBuffer;
using testing::TestDriver;

constexpr GuestAddress kData = 0x60000;

class ConsoleTest : public ::testing::Test {
 protected:
  ConsoleTest()
      : memory_(testing::MakeTestMemory()),
        rx_(memory_, 16, 0x10000),
        tx_(memory_, 16, 0x20000),
        queues_{Queue(256), Queue(256)},
        console_([this](std::span<const uint8_t> bytes) {
          output_.append(bytes.begin(), bytes.end());
        }) {
    rx_.Configure(queues_[0]);
    tx_.Configure(queues_[1]);
    EXPECT_TRUE(queues_[0].Activate(memory_));
    EXPECT_TRUE(queues_[1].Activate(memory_));
  }
  void Activate() {
    ASSERT_TRUE(console_.Activate(ActivateContext{memory_, queues_, kFVersion1, interrupt_}));
  }
  void WriteString(GuestAddress addr, std::string_view text) {
    memory_.Write(addr, {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  }
  std::string ReadString(GuestAddress addr, size_t len) {
    std::string text(len, '\0');
    memory_.Read(addr, {reinterpret_cast<uint8_t*>(text.data()), len});
    return text;
  }
  std::span<const uint8_t> Bytes(std::string_view text) {
    return {reinterpret_cast<const uint8_t*>(text.data()), text.size()};
  }

  GuestMemory memory_;
  TestDriver rx_, tx_;
  std::vector<Queue> queues_;
  RecordingInterrupt interrupt_;
  std::string output_;
  Console console_;
};

TEST_F(ConsoleTest, DescribesItself) {
  EXPECT_EQ(console_.device_type(), 3u);
  EXPECT_EQ(console_.num_queues(), 2);
  std::vector<uint8_t> config(4, 0xff);
  EXPECT_TRUE(console_.ReadConfig(0, config));  // cols, rows = 0
  EXPECT_EQ(config, std::vector<uint8_t>(4, 0));
  EXPECT_FALSE(console_.ReadConfig(10, config));  // past the 12-byte structure
}

TEST_F(ConsoleTest, TransmitGoesToOutput) {
  Activate();
  WriteString(kData, "hello, ");
  WriteString(kData + 0x100, "world");
  uint16_t head =
      tx_.AddChain(std::vector<TestBuffer>{{kData, 7, false}, {kData + 0x100, 5, false}});
  console_.QueueNotify(Console::kTransmitQueue);
  EXPECT_EQ(output_, "hello, world");
  auto used = tx_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 0u);
  EXPECT_EQ(interrupt_.used, std::vector<uint16_t>{Console::kTransmitQueue});
}

TEST_F(ConsoleTest, TransmitIsBoundedPerChain) {
  Activate();
  tx_.AddChain(std::vector<TestBuffer>{{0, 1 << 20, false}, {testing::kRegion1Base, 4096, false}});
  console_.QueueNotify(Console::kTransmitQueue);
  EXPECT_EQ(output_.size(), Console::kMaxTransmitBytes);
  EXPECT_EQ(console_.counters().tx_dropped, 4096u);
}

TEST_F(ConsoleTest, InputWaitsForReceiveBuffers) {
  Activate();
  EXPECT_EQ(console_.EnqueueInput(Bytes("abcdef")), 6u);
  EXPECT_FALSE(rx_.NextUsed());
  uint16_t first = rx_.AddChain(std::vector<TestBuffer>{{kData, 4, true}});
  uint16_t second = rx_.AddChain(std::vector<TestBuffer>{{kData + 0x100, 16, true}});
  console_.QueueNotify(Console::kReceiveQueue);
  auto used = rx_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, first);
  EXPECT_EQ(used->len, 4u);
  EXPECT_EQ(ReadString(kData, 4), "abcd");
  used = rx_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, second);
  EXPECT_EQ(used->len, 2u);
  EXPECT_EQ(ReadString(kData + 0x100, 2), "ef");
  EXPECT_EQ(interrupt_.used, std::vector<uint16_t>{Console::kReceiveQueue});
  EXPECT_EQ(console_.counters().rx_bytes, 6u);
}

TEST_F(ConsoleTest, InputFillsPostedBufferImmediately) {
  Activate();
  uint16_t head = rx_.AddChain(std::vector<TestBuffer>{{kData, 64, true}});
  console_.EnqueueInput(Bytes("ls\n"));
  auto used = rx_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->id, head);
  EXPECT_EQ(used->len, 3u);
  EXPECT_EQ(ReadString(kData, 3), "ls\n");
}

TEST_F(ConsoleTest, InputBufferIsBoundedAndSurvivesReset) {
  std::vector<uint8_t> big(Console::kInputBufferSize + 100, 'x');
  EXPECT_EQ(console_.EnqueueInput(big), Console::kInputBufferSize);
  EXPECT_EQ(console_.counters().rx_dropped, 100u);
  EXPECT_EQ(console_.input_space(), 0u);
  console_.Reset();
  Activate();
  rx_.AddChain(std::vector<TestBuffer>{{testing::kRegion1Base, 1 << 20, true}});
  console_.QueueNotify(Console::kReceiveQueue);
  auto used = rx_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, Console::kInputBufferSize);
  EXPECT_EQ(console_.input_space(), Console::kInputBufferSize);
}

TEST_F(ConsoleTest, InputWrapsAroundTheRing) {
  Activate();
  std::vector<uint8_t> chunk(Console::kInputBufferSize - 10, 'a');
  console_.EnqueueInput(chunk);
  rx_.AddChain(std::vector<TestBuffer>{{testing::kRegion1Base, 1 << 20, true}});
  console_.QueueNotify(Console::kReceiveQueue);
  ASSERT_TRUE(rx_.NextUsed());
  console_.EnqueueInput(Bytes("0123456789ABCDEF"));  // wraps at the ring's end
  rx_.AddChain(std::vector<TestBuffer>{{kData, 64, true}});
  console_.QueueNotify(Console::kReceiveQueue);
  auto used = rx_.NextUsed();
  ASSERT_TRUE(used);
  EXPECT_EQ(used->len, 16u);
  EXPECT_EQ(ReadString(kData, 16), "0123456789ABCDEF");
}

TEST_F(ConsoleTest, ConcurrentInputFromAHostThread) {
  Activate();
  std::thread host([this] {
    for (int i = 0; i < 1000; ++i) console_.EnqueueInput(Bytes("z"));
  });
  size_t received = 0;
  int outstanding = 0;
  for (int round = 0; round < 100000 && received < 1000; ++round) {
    if (outstanding < 8) {
      rx_.AddChain(std::vector<TestBuffer>{{kData, 64, true}});
      outstanding++;
      console_.QueueNotify(Console::kReceiveQueue);
    }
    while (auto used = rx_.NextUsed()) {
      received += used->len;
      outstanding--;
    }
    std::this_thread::yield();
  }
  host.join();
  EXPECT_EQ(received + (Console::kInputBufferSize - console_.input_space()), 1000u);
  EXPECT_FALSE(console_.needs_reset());
}

}  // namespace
}  // namespace vireo::virtio
