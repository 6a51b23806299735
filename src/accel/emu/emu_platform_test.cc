// The software CPU's platform wiring with a manual clock: the paths a guest's interrupts take
// (PIT → IOAPIC pin 2 → LAPIC, MSI → LAPIC, level EOI → IOAPIC, PIC → LINT0 ExtINT), without
// a guest.
#include "accel/emu/emu_platform.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <thread>
#include <vector>

#include "accel/emu/emu_vm.h"

namespace vireo::emu {
namespace {

constexpr uint64_t kApicBase = 0xfee00900;  // BSP, enabled
constexpr uint64_t kIoapic = 0xfec00000;

class EmuPlatformTest : public ::testing::Test {
 protected:
  void Mmio(uint64_t address, uint32_t value) {
    uint64_t data = value;
    ASSERT_TRUE(platform_.HandleMmio(0, kApicBase, true, address, 4, &data));
  }
  uint32_t MmioRead(uint64_t address) {
    uint64_t data = 0;
    EXPECT_TRUE(platform_.HandleMmio(0, kApicBase, false, address, 4, &data));
    return static_cast<uint32_t>(data);
  }
  void Out(uint16_t port, uint8_t value) {
    uint64_t data = value;
    ASSERT_TRUE(platform_.HandlePio(true, port, 1, &data));
  }
  void Redirect(int pin, uint32_t low) {
    Mmio(kIoapic, 0x10 + 2 * pin + 1);
    Mmio(kIoapic + 0x10, 0);  // destination APIC 0
    Mmio(kIoapic, 0x10 + 2 * pin);
    Mmio(kIoapic + 0x10, low);
  }
  std::optional<uint8_t> Take() {
    uint8_t cr8 = 0;
    return platform_.TakeInterrupt(0, kApicBase, &cr8, true);
  }

  irqchip::ManualClock clock_;
  std::vector<int> wakes_;
  EmuPlatform platform_{1, clock_, [this](int id) { wakes_.push_back(id); }};
};

TEST_F(EmuPlatformTest, PitIrq0ReachesTheLapicThroughIoapicPin2) {
  Mmio(0xfee000f0, 0x1ff);  // software enable
  Redirect(2, 0x30);
  Out(0x43, 0x34);  // counter 0, mode 2, 100 Hz
  Out(0x40, 11932 & 0xff);
  Out(0x40, 11932 >> 8);
  // 11932 clocks of 1.193182 MHz end 10,000,151 ns (rounded up) after the count was loaded.
  EXPECT_EQ(platform_.NextDeadlineNs(0), clock_.NowNs() + 10'000'151);
  clock_.Advance(10'000'150);
  platform_.PollTimers(0);
  EXPECT_EQ(Take(), std::nullopt);
  clock_.Advance(1);
  platform_.PollTimers(0);
  EXPECT_FALSE(wakes_.empty());
  EXPECT_EQ(Take(), uint8_t{0x30});
  EXPECT_EQ(Take(), std::nullopt);
  Mmio(0xfee000b0, 0);  // EOI
}

TEST_F(EmuPlatformTest, LapicTimerAndTprThroughCr8) {
  Mmio(0xfee000f0, 0x1ff);
  Mmio(0xfee003e0, 0xb);  // divide by 1
  Mmio(0xfee00320, 0x41);
  Mmio(0xfee00380, 1000);
  clock_.Advance(1000);
  platform_.PollTimers(0);
  uint8_t cr8 = 4;  // CR8 = 4 masks class 4
  EXPECT_EQ(platform_.TakeInterrupt(0, kApicBase, &cr8, true), std::nullopt);
  EXPECT_EQ(MmioRead(0xfee00080), 0x40u);  // TPR follows CR8
  cr8 = 0;
  EXPECT_EQ(platform_.TakeInterrupt(0, kApicBase, &cr8, true), uint8_t{0x41});
}

// The RDMSR/WRMSR path of IA32_TSC_DEADLINE as Linux's lapic_next_deadline uses it, and the
// sleep bound a halted vCPU gets from it with a known TSC rate.
TEST(EmuPlatformTscDeadlineTest, MsrArmsTheTimerAndBoundsTheSleep) {
  irqchip::ManualClock clock;
  EmuPlatform platform(
      1, clock, [](int) {}, 1'000'000'000);  // 1 GHz: a tick is 1 ns
  uint64_t data = 0x1ff;
  ASSERT_TRUE(platform.HandleMmio(0, kApicBase, true, 0xfee000f0, 4, &data));
  data = 0x42 | (2u << 17);
  ASSERT_TRUE(platform.HandleMmio(0, kApicBase, true, 0xfee00320, 4, &data));
  uint64_t v = 1;
  EXPECT_FALSE(platform.ReadMsr(0, 0x6e1, &v));  // not an APIC MSR: #GP
  ASSERT_TRUE(platform.ReadMsr(0, EmuPlatform::kMsrTscDeadline, &v));
  EXPECT_EQ(v, 0u);
  ASSERT_TRUE(platform.WriteMsr(0, EmuPlatform::kMsrTscDeadline, 1'000'500, 1'000'000));
  ASSERT_TRUE(platform.ReadMsr(0, EmuPlatform::kMsrTscDeadline, &v));
  EXPECT_EQ(v, 1'000'500u);
  EXPECT_EQ(platform.NextDeadlineNs(0, 1'000'000), clock.NowNs() + 500);
  uint8_t cr8 = 0;
  platform.PollTimers(0, 1'000'499);
  EXPECT_EQ(platform.TakeInterrupt(0, kApicBase, &cr8, true), std::nullopt);
  platform.PollTimers(0, 1'000'500);
  EXPECT_EQ(platform.TakeInterrupt(0, kApicBase, &cr8, true), uint8_t{0x42});
  data = 0;
  ASSERT_TRUE(platform.HandleMmio(0, kApicBase, true, 0xfee000b0, 4, &data));  // EOI
  // A deadline in the past fires during the WRMSR itself.
  ASSERT_TRUE(platform.WriteMsr(0, EmuPlatform::kMsrTscDeadline, 5, 2'000'000));
  EXPECT_EQ(platform.TakeInterrupt(0, kApicBase, &cr8, true), uint8_t{0x42});
  ASSERT_TRUE(platform.ReadMsr(0, EmuPlatform::kMsrTscDeadline, &v));
  EXPECT_EQ(v, 0u);
}

// Two vCPUs in x2APIC mode: the MMIO page is gone, an ICR MSR write reaches the other APIC
// by its 32-bit ID, and logical cluster destinations select by LDR.
TEST(EmuPlatformX2ApicTest, IcrMsrDeliversByX2ApicIdAndThePageIsGone) {
  irqchip::ManualClock clock;
  std::vector<int> wakes;
  EmuPlatform platform(2, clock, [&](int id) { wakes.push_back(id); });
  constexpr uint64_t kX2Base = 0xfee00c00;  // EN | EXTD
  for (int i = 0; i < 2; ++i) {
    platform.SetApicBase(i, kX2Base);
    ASSERT_TRUE(platform.WriteMsr(i, 0x80f, 0x1ff, 0));
  }
  uint64_t data = 0;
  EXPECT_FALSE(platform.HandleMmio(0, kX2Base, false, 0xfee00020, 4, &data));
  ASSERT_TRUE(platform.ReadMsr(1, 0x802, &data));
  EXPECT_EQ(data, 1u);
  ASSERT_TRUE(platform.WriteMsr(0, 0x830, (uint64_t{1} << 32) | 0x52, 0));
  uint8_t cr8 = 0;
  EXPECT_EQ(platform.TakeInterrupt(0, kX2Base, &cr8, true), std::nullopt);
  EXPECT_EQ(platform.TakeInterrupt(1, kX2Base, &cr8, true), uint8_t{0x52});
  ASSERT_TRUE(platform.WriteMsr(1, 0x80b, 0, 0));
  // Logical: cluster 0, members 0 and 1 (LDR bits 0 and 1).
  ASSERT_TRUE(platform.WriteMsr(0, 0x830, (uint64_t{0x3} << 32) | (1u << 11) | 0x53, 0));
  EXPECT_EQ(platform.TakeInterrupt(0, kX2Base, &cr8, true), uint8_t{0x53});
  EXPECT_EQ(platform.TakeInterrupt(1, kX2Base, &cr8, true), uint8_t{0x53});
  // Back to disabled: the MSRs #GP again.
  platform.SetApicBase(1, 0xfee00000);
  EXPECT_FALSE(platform.ReadMsr(1, 0x802, &data));
}

// Lowest-priority MSIs in logical flat mode, as Linux's flat APIC driver leaves the LDRs:
// the APIC with the lower TPR class takes it; equal classes alternate.
TEST(EmuPlatformLowestPriorityTest, LowestTprClassWinsAndTiesRoundRobin) {
  irqchip::ManualClock clock;
  EmuPlatform platform(2, clock, [](int) {});
  auto mmio = [&](int vcpu, uint64_t address, uint32_t value) {
    uint64_t data = value;
    ASSERT_TRUE(platform.HandleMmio(vcpu, kApicBase, true, address, 4, &data));
  };
  for (int i = 0; i < 2; ++i) {
    mmio(i, 0xfee000f0, 0x1ff);            // software enable
    mmio(i, 0xfee000d0, (1u << i) << 24);  // LDR: one bit per CPU, flat model
  }
  auto take = [&](int vcpu) {
    uint8_t cr8 = static_cast<uint8_t>(platform.Tpr(vcpu) >> 4);  // CR8 follows TPR
    std::optional<uint8_t> v = platform.TakeInterrupt(vcpu, kApicBase, &cr8, true);
    if (v) mmio(vcpu, 0xfee000b0, 0);  // EOI
    return v;
  };
  // MSI: logical (address bit 2), destination 0x03 (both), lowest priority (data 10:8 = 1).
  constexpr uint64_t kAddress = 0xfee03004;
  constexpr uint32_t kData = (1u << 8) | 0x60;
  mmio(0, 0xfee00080, 0x30);  // CPU 0 busier: TPR class 3
  platform.SignalMsi(kAddress, kData);
  EXPECT_EQ(take(0), std::nullopt);
  EXPECT_EQ(take(1), uint8_t{0x60});
  mmio(1, 0xfee00080, 0x40);  // now CPU 1 is busier
  platform.SignalMsi(kAddress, kData);
  EXPECT_EQ(take(1), std::nullopt);
  EXPECT_EQ(take(0), uint8_t{0x60});
  // Equal classes: one each, in turn.
  mmio(0, 0xfee00080, 0);
  mmio(1, 0xfee00080, 0);
  int got[2] = {0, 0};
  for (int k = 0; k < 4; ++k) {
    platform.SignalMsi(kAddress, kData);
    for (int i = 0; i < 2; ++i) {
      if (take(i)) ++got[i];
    }
  }
  EXPECT_EQ(got[0], 2);
  EXPECT_EQ(got[1], 2);
  // Only the matching APIC is a candidate, whatever its priority.
  mmio(1, 0xfee00080, 0x50);
  platform.SignalMsi(0xfee02004, kData);  // logical destination 0x02: CPU 1 only
  EXPECT_EQ(take(1), uint8_t{0x60});
}

TEST_F(EmuPlatformTest, MsiAndLevelEoiBroadcast) {
  Mmio(0xfee000f0, 0x1ff);
  platform_.SignalMsi(0xfee00000, 0x45);
  EXPECT_EQ(Take(), uint8_t{0x45});
  platform_.SignalMsi(0xfee01000, 0x46);  // APIC ID 1: nobody
  EXPECT_EQ(Take(), std::nullopt);
  Mmio(0xfee000b0, 0);
  // A level line on pin 10 stays in Remote IRR until the LAPIC's EOI reaches the IOAPIC.
  Redirect(10, 0x50 | (1 << 15));
  platform_.SetIrqLine(10, true);
  EXPECT_EQ(Take(), uint8_t{0x50});
  Mmio(kIoapic, 0x10 + 20);
  EXPECT_NE(MmioRead(kIoapic + 0x10) & (1 << 14), 0u);
  Mmio(0xfee000b0, 0);  // EOI: the line is still up, so it comes again
  EXPECT_EQ(Take(), uint8_t{0x50});
  platform_.SetIrqLine(10, false);
  Mmio(0xfee000b0, 0);
  Mmio(kIoapic, 0x10 + 20);
  EXPECT_EQ(MmioRead(kIoapic + 0x10) & (1 << 14), 0u);
  EXPECT_EQ(Take(), std::nullopt);
}

TEST_F(EmuPlatformTest, PicReachesTheCpuThroughLint0ExtIntOnly) {
  // ICW1-4: vector bases 0x20/0x28, then unmask IRQ 4.
  for (auto [port, value] : std::vector<std::pair<uint16_t, uint8_t>>{
           {0x20, 0x11}, {0x21, 0x20}, {0x21, 0x04}, {0x21, 0x01}, {0x21, 0xef}}) {
    Out(port, value);
  }
  platform_.SetIrqLine(4, true);
  EXPECT_EQ(Take(), std::nullopt);  // LINT0 masked at reset
  platform_.SetupLint(0);
  EXPECT_EQ(Take(), uint8_t{0x24});
  // With the APIC globally disabled the PIC's INT goes to the CPU directly.
  Out(0x20, 0x20);
  platform_.SetIrqLine(4, false);
  platform_.SetIrqLine(4, true);
  uint8_t cr8 = 0;
  EXPECT_EQ(platform_.TakeInterrupt(0, 0xfee00100, &cr8, true), uint8_t{0x24});
}

TEST_F(EmuPlatformTest, ClaimsOnlyItsPortsAndPages) {
  uint64_t data = 0;
  EXPECT_FALSE(platform_.HandlePio(false, 0x3f8, 1, &data));
  EXPECT_FALSE(platform_.HandleMmio(0, kApicBase, false, 0xfed00000, 4, &data));
  // A disabled APIC's page is ordinary MMIO (the VMM's), the IOAPIC's stays claimed.
  EXPECT_FALSE(platform_.HandleMmio(0, 0xfee00100, false, 0xfee00020, 4, &data));
  EXPECT_TRUE(platform_.HandleMmio(0, 0xfee00100, false, kIoapic, 4, &data));
  // Port B reads and the PIT's control port is write-only.
  EXPECT_TRUE(platform_.HandlePio(false, 0x61, 1, &data));
  EXPECT_TRUE(platform_.HandlePio(false, 0x43, 1, &data));
  EXPECT_EQ(data, 0xffu);
  // Odd widths on the APIC page read as zero.
  EXPECT_TRUE(platform_.HandleMmio(0, kApicBase, false, 0xfee00020, 2, &data));
  EXPECT_EQ(data, 0u);
}

// The irqfd reader thread: an eventfd on an MSI route and one on an IOAPIC pin each raise
// their interrupt; after RemoveIrqFd the fd is the caller's to close, and a registered fd the
// caller closed early does not stop the VM from going away.
TEST(EmuVmIrqFdTest, IrqFdsRaiseMsiRoutesAndPinsThroughTheReaderThread) {
  EmuVm vm(1);
  EmuPlatform& p = vm.platform();
  uint64_t data = 0x1ff;
  ASSERT_TRUE(p.HandleMmio(0, kApicBase, true, 0xfee000f0, 4, &data));
  auto take = [&]() -> std::optional<uint8_t> {
    for (int i = 0; i < 2000; ++i) {
      uint8_t cr8 = 0;
      if (auto v = p.TakeInterrupt(0, kApicBase, &cr8, true)) return v;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return std::nullopt;
  };
  const uint64_t one = 1;
  const int msi_fd = eventfd(0, EFD_CLOEXEC);
  auto gsi = vm.AddMsiRoute(0xfee00000, 0x44);
  ASSERT_TRUE(gsi);
  EXPECT_EQ(*gsi, 24u);
  ASSERT_TRUE(vm.AddIrqFd(*gsi, msi_fd));
  ASSERT_EQ(write(msi_fd, &one, sizeof(one)), 8);
  EXPECT_EQ(take(), uint8_t{0x44});
  data = 0;
  ASSERT_TRUE(p.HandleMmio(0, kApicBase, true, 0xfee000b0, 4, &data));

  const int pin_fd = eventfd(0, EFD_CLOEXEC);
  ASSERT_TRUE(vm.AddIrqFd(5, pin_fd));
  for (auto [reg, value] : std::vector<std::pair<uint32_t, uint32_t>>{{0x1b, 0}, {0x1a, 0x55}}) {
    uint64_t v = reg;
    ASSERT_TRUE(p.HandleMmio(0, kApicBase, true, kIoapic, 4, &v));
    v = value;
    ASSERT_TRUE(p.HandleMmio(0, kApicBase, true, kIoapic + 0x10, 4, &v));
  }
  ASSERT_EQ(write(pin_fd, &one, sizeof(one)), 8);
  EXPECT_EQ(take(), uint8_t{0x55});

  ASSERT_TRUE(vm.RemoveIrqFd(*gsi, msi_fd));
  EXPECT_FALSE(vm.RemoveIrqFd(*gsi, msi_fd));
  close(msi_fd);
  close(pin_fd);  // still registered: the reader polls its own dup
}

// The platform's snapshot (the VM's controllers and the vCPU's LAPIC page) restored into a
// fresh platform on a clock at another time: a PIT period and a LAPIC count-down in flight
// finish after the same delays there, and a level IOAPIC pin still waits for its EOI.
TEST_F(EmuPlatformTest, SnapshotRestoresIntoAFreshPlatformWithTimersInFlight) {
  Mmio(0xfee000f0, 0x1ff);
  Redirect(2, 0x30);
  Redirect(9, 0x39 | (1u << 15));  // the SCI: level
  platform_.SetIrqLine(9, true);
  ASSERT_EQ(Take(), uint8_t{0x39});  // in service, Remote IRR set
  Out(0x43, 0x34);                   // PIT counter 0, mode 2, 1000 clocks (838 us)
  Out(0x40, 1000 & 0xff);
  Out(0x40, 1000 >> 8);
  Mmio(0xfee003e0, 0xb);  // LAPIC timer: divide by 1, one-shot vector 0x41, 5 ms
  Mmio(0xfee00320, 0x41);
  Mmio(0xfee00380, 5'000'000);
  clock_.Advance(500'000);
  const uint64_t pit_left = platform_.NextDeadlineNs(0) - clock_.NowNs();
  const accel::VmSavedState vm = platform_.SaveState();
  std::array<uint8_t, irqchip::LocalApic::kPageSize> page{};
  platform_.SaveLapic(0, page);

  irqchip::ManualClock clock;
  clock.Set(clock_.NowNs() + 50'000'000'000);
  EmuPlatform b{1, clock, [](int) {}};
  ASSERT_TRUE(b.RestoreState(vm));
  ASSERT_TRUE(b.RestoreLapic(0, page));
  uint8_t cr8 = 0;
  // 0x39 is in service: the PIT's 0x30 (lower class) waits; the line is still up with
  // Remote IRR set, so nothing new is sent for pin 9.
  EXPECT_EQ(b.NextDeadlineNs(0) - clock.NowNs(), pit_left);
  clock.Advance(pit_left);
  b.PollTimers(0);
  EXPECT_EQ(b.TakeInterrupt(0, kApicBase, &cr8, true), std::nullopt);
  uint64_t eoi = 0;
  ASSERT_TRUE(b.HandleMmio(0, kApicBase, true, 0xfee000b0, 4, &eoi));  // EOI 0x39
  // The level line is still asserted: redelivered on the EOI, before the PIT's lower vector.
  EXPECT_EQ(b.TakeInterrupt(0, kApicBase, &cr8, true), uint8_t{0x39});
  b.SetIrqLine(9, false);
  ASSERT_TRUE(b.HandleMmio(0, kApicBase, true, 0xfee000b0, 4, &eoi));
  EXPECT_EQ(b.TakeInterrupt(0, kApicBase, &cr8, true), uint8_t{0x30});
  ASSERT_TRUE(b.HandleMmio(0, kApicBase, true, 0xfee000b0, 4, &eoi));
  // The LAPIC one-shot had 4.5 ms left (the PIT's later periods may be pending meanwhile;
  // 0x41 is the higher class, so it is the one offered once due).
  clock.Advance(4'500'000 - pit_left - 1);
  b.PollTimers(0);
  EXPECT_NE(b.TakeInterrupt(0, kApicBase, &cr8, false), uint8_t{0x41});
  clock.Advance(1);
  b.PollTimers(0);
  EXPECT_EQ(b.TakeInterrupt(0, kApicBase, &cr8, true), uint8_t{0x41});
}

}  // namespace
}  // namespace vireo::emu
