// The userspace half of KVM's split irqchip against a fake KVM (no /dev/kvm): redirection
// entries mirrored into MSI routes, IOAPIC messages as KVM_SIGNAL_MSI, KVM_EXIT_IOAPIC_EOI
// clearing Remote IRR, and the ExtINT decision vCPU 0 makes before KVM_RUN.
#include "accel/kvm/split_irqchip.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <thread>
#include <vector>

namespace vireo::kvm {
namespace {

constexpr uint64_t kIoapic = 0xfec00000;

class FakeKvm : public SplitIrqchipHost {
 public:
  bool DeliverMsi(uint64_t address, uint32_t data) override {
    msis.push_back({address, data});
    return accept;
  }
  void RoutePinToMsi(int pin, uint64_t address, uint32_t data) override {
    routes[pin] = {address, data};
    ++route_commits;
  }
  std::vector<MsiMessage> msis;
  std::map<int, MsiMessage> routes;
  int route_commits = 0;
  bool accept = true;
};

class SplitIrqchipTest : public ::testing::Test {
 protected:
  void Mmio(uint64_t address, uint32_t value) {
    uint64_t data = value;
    ASSERT_TRUE(chip_.HandleMmio(true, address, 4, &data));
  }
  void Redirect(int pin, uint32_t low, uint32_t high = 0) {
    Mmio(kIoapic, 0x10 + 2 * pin + 1);
    Mmio(kIoapic + 0x10, high);
    Mmio(kIoapic, 0x10 + 2 * pin);
    Mmio(kIoapic + 0x10, low);
  }
  uint32_t RedirectionLow(int pin) {
    Mmio(kIoapic, 0x10 + 2 * pin);
    uint64_t data = 0;
    EXPECT_TRUE(chip_.HandleMmio(false, kIoapic + 0x10, 4, &data));
    return static_cast<uint32_t>(data);
  }
  void Out(uint16_t port, uint8_t value) {
    uint64_t data = value;
    ASSERT_TRUE(chip_.HandlePio(true, port, &data));
  }
  // The PIC as Linux's init_8259A leaves it: vectors 0x20/0x28, cascade on IRQ 2.
  void InitPic(uint8_t master_mask) {
    Out(0x20, 0x11), Out(0x21, 0x20), Out(0x21, 0x04), Out(0x21, 0x01);
    Out(0xa0, 0x11), Out(0xa1, 0x28), Out(0xa1, 0x02), Out(0xa1, 0x01);
    Out(0x21, master_mask), Out(0xa1, 0xff);
  }

  irqchip::ManualClock clock_;
  FakeKvm kvm_;
  SplitIrqchip chip_{kvm_, 2, clock_};
};

TEST(SplitIrqchipMsi, MessagesAndRedirectionEntriesBecomeTheSameMsi) {
  irqchip::ApicMessage m{
      .vector = 0x41, .delivery_mode = 1, .logical = true, .level = true, .destination = 0x03};
  EXPECT_EQ(MsiFromApicMessage(m), (MsiMessage{0xfee03004, 0x8141}));
  // Entry: vector 0x41, lowest priority, logical, level, destination 3 in 63:56.
  const uint64_t entry = (uint64_t{3} << 56) | (1u << 15) | (1u << 11) | (1u << 8) | 0x41;
  EXPECT_EQ(MsiFromRedirection(entry), (MsiMessage{0xfee03004, 0x8141}));
  // Edge, physical, fixed to APIC 1; the mask bit does not change the message.
  EXPECT_EQ(MsiFromRedirection((uint64_t{1} << 56) | (1u << 16) | 0x30),
            (MsiMessage{0xfee01000, 0x30}));
}

TEST(SplitIrqchipMsi, ExtIntDecision) {
  EXPECT_EQ(DecideExtInt(false, true), ExtIntAction::kNone);
  EXPECT_EQ(DecideExtInt(false, false), ExtIntAction::kNone);
  EXPECT_EQ(DecideExtInt(true, true), ExtIntAction::kInject);
  EXPECT_EQ(DecideExtInt(true, false), ExtIntAction::kRequestWindow);
}

TEST_F(SplitIrqchipTest, ResetRoutesMirrorMaskedEntriesAndWritesUpdateOnlyTheirPin) {
  for (const MsiMessage& m : chip_.PinRoutes()) EXPECT_EQ(m, (MsiMessage{0xfee00000, 0}));
  Redirect(9, 0x8039, 0x01000000);  // level, vector 0x39, APIC 1
  ASSERT_TRUE(kvm_.routes.count(9));
  EXPECT_EQ(kvm_.routes[9], (MsiMessage{0xfee01000, 0x8039}));
  EXPECT_EQ(kvm_.routes.size(), 1u);
  EXPECT_EQ(chip_.PinRoutes()[9], (MsiMessage{0xfee01000, 0x8039}));
  // Rewriting the same entry (or only its mask bit) commits nothing new.
  const int commits = kvm_.route_commits;
  Redirect(9, 0x18039, 0x01000000);
  Redirect(9, 0x8039, 0x01000000);
  EXPECT_EQ(kvm_.route_commits, commits);
}

TEST_F(SplitIrqchipTest, LevelPinHoldsRemoteIrrUntilTheEoiExitAndRedeliversWhileHigh) {
  Redirect(9, 0x8039);  // SCI: level, vector 0x39, APIC 0
  chip_.SetIrqLine(9, true);
  ASSERT_EQ(kvm_.msis.size(), 1u);
  EXPECT_EQ(kvm_.msis[0], (MsiMessage{0xfee00000, 0x8039}));
  EXPECT_TRUE(RedirectionLow(9) & (1u << 14));  // Remote IRR
  chip_.SetIrqLine(9, true);                    // still pending: nothing more
  EXPECT_EQ(kvm_.msis.size(), 1u);
  chip_.Eoi(0x38);  // another vector's EOI changes nothing
  EXPECT_TRUE(RedirectionLow(9) & (1u << 14));
  chip_.Eoi(0x39);  // KVM_EXIT_IOAPIC_EOI: the line is still high, so again
  EXPECT_EQ(kvm_.msis.size(), 2u);
  chip_.SetIrqLine(9, false);
  chip_.Eoi(0x39);
  EXPECT_FALSE(RedirectionLow(9) & (1u << 14));
  EXPECT_EQ(kvm_.msis.size(), 2u);
}

TEST_F(SplitIrqchipTest, RefusedLevelMessageLeavesRemoteIrrClear) {
  kvm_.accept = false;  // KVM_SIGNAL_MSI returned 0: no LAPIC took it
  Redirect(9, 0x8039);
  chip_.SetIrqLine(9, true);
  EXPECT_FALSE(RedirectionLow(9) & (1u << 14));
}

TEST_F(SplitIrqchipTest, MaskedPinDeliversNothingThroughItsIrqfd) {
  ASSERT_TRUE(chip_.Start());
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(chip_.AddIrqFd(5, fd));
  const uint64_t one = 1;
  auto signal_and_wait = [&] {
    ASSERT_EQ(::write(fd, &one, sizeof(one)), static_cast<ssize_t>(sizeof(one)));
    // The service thread drains the eventfd, then raises the pin ...
    pollfd p{fd, POLLIN, 0};
    for (int i = 0; i < 5000 && ::poll(&p, 1, 0) == 1; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_EQ(::poll(&p, 1, 0), 0) << "the irqfd was never read";
    // ... and RemoveIrqFd returns only once it is back at the top of its loop.
    ASSERT_TRUE(chip_.RemoveIrqFd(5, fd));
    ASSERT_TRUE(chip_.AddIrqFd(5, fd));
  };
  Redirect(5, 0x10035);  // masked, edge, vector 0x35
  signal_and_wait();
  EXPECT_TRUE(kvm_.msis.empty());
  Redirect(5, 0x35);  // unmasked
  signal_and_wait();
  ASSERT_EQ(kvm_.msis.size(), 1u);
  EXPECT_EQ(kvm_.msis[0], (MsiMessage{0xfee00000, 0x35}));
  ASSERT_TRUE(chip_.RemoveIrqFd(5, fd));
  ::close(fd);
}

TEST_F(SplitIrqchipTest, PicInterruptIsInjectedWhenReadyElseWaitsForTheWindow) {
  int kicks = 0;
  chip_.SetVcpu0Kick([&] { ++kicks; });
  InitPic(0xfe & ~0x10);  // IRQ 0 (the PIT) masked off below; IRQ 4 open
  Out(0x21, 0xef);        // only IRQ 4
  // Nothing pending: no injection, no window.
  SplitIrqchip::Entry e = chip_.EnterGuest(true);
  EXPECT_FALSE(e.inject);
  EXPECT_FALSE(e.request_window);
  // IRQ 4 rises while vCPU 0 is inside KVM_RUN: it is kicked out.
  chip_.SetIrqLine(4, true);
  EXPECT_EQ(kicks, 1);
  chip_.LeaveGuest();
  // Not ready (IF clear, or a shadow): ask KVM for the window, take nothing from the PIC.
  e = chip_.EnterGuest(false);
  EXPECT_FALSE(e.inject);
  EXPECT_TRUE(e.request_window);
  chip_.LeaveGuest();
  // Ready: INTA now, vector 0x20 + 4; nothing else pending, so no window.
  e = chip_.EnterGuest(true);
  ASSERT_TRUE(e.inject);
  EXPECT_EQ(*e.inject, 0x24);
  EXPECT_FALSE(e.request_window);
  chip_.LeaveGuest();
  // Outside KVM_RUN nobody is kicked: the next EnterGuest looks anyway.
  chip_.SetIrqLine(4, false);
  Out(0x20, 0x20);  // EOI
  chip_.SetIrqLine(4, true);
  EXPECT_EQ(kicks, 1);
  e = chip_.EnterGuest(true);
  ASSERT_TRUE(e.inject);
  EXPECT_EQ(*e.inject, 0x24);
  chip_.LeaveGuest();
}

TEST_F(SplitIrqchipTest, PicInterruptPendingInASnapshotIsInjectedAfterRestore) {
  InitPic(0xef);              // only IRQ 4
  chip_.SetIrqLine(4, true);  // vCPU 0 outside KVM_RUN: nothing taken yet
  accel::VmSavedState state;
  chip_.SaveState(state);
  // A fresh chip has seen no rise; only the restored model says IRQ 4 is pending.
  FakeKvm kvm;
  SplitIrqchip restored{kvm, 2, clock_};
  ASSERT_TRUE(restored.RestoreState(state));
  const SplitIrqchip::Entry e = restored.EnterGuest(true);
  ASSERT_TRUE(e.inject);
  EXPECT_EQ(*e.inject, 0x24);
  restored.LeaveGuest();
}

TEST_F(SplitIrqchipTest, PitDrivesIoapicPin2AndThePicIrq0) {
  Redirect(2, 0x30);  // edge, vector 0x30
  InitPic(0xfe);      // PIC: only IRQ 0
  Out(0x43, 0x34);    // counter 0, mode 2, 100 Hz
  Out(0x40, 11932 & 0xff);
  Out(0x40, 11932 >> 8);
  clock_.Advance(10'000'151);
  chip_.PollTimers();
  ASSERT_EQ(kvm_.msis.size(), 1u);
  EXPECT_EQ(kvm_.msis[0], (MsiMessage{0xfee00000, 0x30}));
  const SplitIrqchip::Entry e = chip_.EnterGuest(true);
  ASSERT_TRUE(e.inject);
  EXPECT_EQ(*e.inject, 0x20);
  chip_.LeaveGuest();
  // With an HPET in legacy replacement, the PIT is silent.
  chip_.SetPitIrqEnabled(false);
  clock_.Advance(10'000'000);
  chip_.PollTimers();
  EXPECT_EQ(kvm_.msis.size(), 1u);
}

TEST_F(SplitIrqchipTest, ExtIntPinKicksVcpu0InsteadOfSendingAnMsi) {
  int kicks = 0;
  chip_.SetVcpu0Kick([&] { ++kicks; });
  (void)chip_.EnterGuest(true);
  Redirect(3, 0x700);  // pin 3 in ExtINT mode (virtual wire)
  chip_.SetIrqLine(3, true);
  EXPECT_TRUE(kvm_.msis.empty());
  EXPECT_GE(kicks, 1);
  chip_.LeaveGuest();
}

}  // namespace
}  // namespace vireo::kvm
