#include "devices/irqchip/hpet_device.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

namespace vireo::irqchip {
namespace {

void Write64(HpetDevice& device, uint64_t offset, uint64_t value) {
  uint8_t bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(value >> (8 * i));
  device.Write(offset, bytes);
}

// The timerfd path: a comparator 1 ms ahead raises its interrupt from the I/O thread with
// no MMIO access to poll it (the wait's bound is generous; nothing asserts how soon).
TEST(HpetDeviceTest, ExpiryRaisesTheInterruptFromTheEventLoop) {
  auto loop = EventLoop::Create("hpet-test");
  ASSERT_TRUE(loop) << loop.error().message;
  ASSERT_TRUE((*loop)->Start());
  std::mutex mu;
  std::condition_variable cv;
  int raised = 0;
  MonotonicClock clock;
  Hpet::Callbacks callbacks;
  callbacks.set_irq = [&](uint32_t line, bool legacy, bool level) {
    if (line != 21 || legacy || !level) return;
    std::lock_guard lock(mu);
    ++raised;
    cv.notify_all();
  };
  auto device = HpetDevice::Create(clock, **loop, std::move(callbacks));
  ASSERT_TRUE(device) << device.error().message;
  const uint64_t timer1 = Hpet::kTimerBase + Hpet::kTimerStride;
  Write64(**device, timer1, Hpet::kTnIntEnb | (uint64_t{21} << Hpet::kTnRouteShift));
  Write64(**device, timer1 + Hpet::kTimerComparator, 10'000);  // 1 ms at 10 MHz
  Write64(**device, Hpet::kConfig, Hpet::kEnableCnf);
  {
    std::unique_lock lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return raised > 0; }));
  }
  device->reset();
  (*loop)->Stop();
  EXPECT_EQ(raised, 1);  // a 64-bit one-shot fires once
}

}  // namespace
}  // namespace vireo::irqchip
