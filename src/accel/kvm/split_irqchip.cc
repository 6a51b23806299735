#include "accel/kvm/split_irqchip.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace vireo::kvm {
namespace {

constexpr uint32_t kExtInt = 7;

}  // namespace

MsiMessage MsiFromApicMessage(const irqchip::ApicMessage& m) {
  MsiMessage msi;
  msi.address = 0xfee00000u | ((m.destination & 0xff) << 12) | (uint32_t{m.logical} << 2);
  msi.data = uint32_t{m.vector} | (uint32_t{m.delivery_mode} & 7) << 8 | uint32_t{m.level} << 15;
  return msi;
}

MsiMessage MsiFromRedirection(uint64_t entry) {
  irqchip::ApicMessage m;
  m.vector = static_cast<uint8_t>(entry);
  m.delivery_mode = static_cast<uint8_t>((entry >> 8) & 7);
  m.logical = (entry >> 11) & 1;
  m.level = (entry & irqchip::Ioapic::kLevel) != 0;
  m.destination = static_cast<uint32_t>(entry >> 56);
  return MsiFromApicMessage(m);
}

ExtIntAction DecideExtInt(bool pic_output, bool ready_for_injection) {
  if (!pic_output) return ExtIntAction::kNone;
  return ready_for_injection ? ExtIntAction::kInject : ExtIntAction::kRequestWindow;
}

SplitIrqchip::SplitIrqchip(SplitIrqchipHost& host, int vcpu_count, const irqchip::Clock& clock)
    : host_(host), pc_(clock, *this, static_cast<uint8_t>(vcpu_count)) {
  for (int pin = 0; pin < irqchip::Ioapic::kPins; ++pin) {
    mirrored_[pin] = MsiFromRedirection(pc_.ioapic().redirection(pin));
  }
}

SplitIrqchip::~SplitIrqchip() {
  if (thread_.joinable()) {
    {
      std::lock_guard lock(irqfds_mu_);
      stopping_ = true;
    }
    irqfds_changed_.notify_all();  // a RemoveIrqFd still waiting gives up
    WakeServiceThread();
    thread_.join();
  }
}

std::array<MsiMessage, irqchip::Ioapic::kPins> SplitIrqchip::PinRoutes() {
  std::lock_guard lock(mu_);
  return mirrored_;
}

Status SplitIrqchip::Start() {
  timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer_) return Fail("creating the PIT's timerfd: {}", std::strerror(errno));
  control_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!control_) return Fail("eventfd for the split irqchip's thread: {}", std::strerror(errno));
  thread_ = std::thread([this] { ServiceLoop(); });
  return {};
}

void SplitIrqchip::WakeServiceThread() {
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(control_.get(), &one, sizeof(one));
}

void SplitIrqchip::SetIrqLine(uint32_t gsi, bool level) {
  std::lock_guard lock(mu_);
  pc_.SetIrq(gsi, level);
}

void SplitIrqchip::SetPitIrqEnabled(bool enabled) {
  std::lock_guard lock(mu_);
  pc_.SetPitIrqEnabled(enabled);
}

void SplitIrqchip::RaisePin(uint32_t gsi) {
  // An irqfd is an edge, as KVM's (assert, then de-assert).
  std::lock_guard lock(mu_);
  pc_.SetIrq(gsi, true);
  pc_.SetIrq(gsi, false);
}

Status SplitIrqchip::AddIrqFd(uint32_t gsi, int event_fd) {
  if (gsi >= irqchip::Ioapic::kPins) return Fail("GSI {} is not an IOAPIC pin", gsi);
  if (!control_) return Fail("the split irqchip's thread is not started");
  UniqueFd own(::fcntl(event_fd, F_DUPFD_CLOEXEC, 0));
  if (!own) return Fail("irqfd {} for GSI {}: {}", event_fd, gsi, std::strerror(errno));
  std::lock_guard lock(irqfds_mu_);
  irqfds_.push_back({gsi, event_fd, std::move(own)});
  ++irqfd_generation_;
  WakeServiceThread();
  return {};
}

Status SplitIrqchip::RemoveIrqFd(uint32_t gsi, int event_fd) {
  std::unique_lock lock(irqfds_mu_);
  auto it = std::find_if(irqfds_.begin(), irqfds_.end(),
                         [&](const IrqFd& f) { return f.gsi == gsi && f.fd == event_fd; });
  if (it == irqfds_.end()) return Fail("no irqfd is registered for GSI {}", gsi);
  UniqueFd own = std::move(it->own);  // closed once the thread has stopped polling it
  irqfds_.erase(it);
  const uint64_t wanted = ++irqfd_generation_;
  WakeServiceThread();
  irqfds_changed_.wait(lock, [&] { return irqfd_generation_seen_ >= wanted || stopping_; });
  return {};
}

void SplitIrqchip::ServiceLoop() {
  std::vector<pollfd> fds;
  std::vector<uint32_t> gsis;
  for (;;) {
    {
      std::lock_guard lock(irqfds_mu_);
      if (stopping_) return;
      fds.assign({pollfd{control_.get(), POLLIN, 0}, pollfd{timer_.get(), POLLIN, 0}});
      gsis.assign(2, 0);
      for (const IrqFd& f : irqfds_) {
        fds.push_back(pollfd{f.own.get(), POLLIN, 0});
        gsis.push_back(f.gsi);
      }
      irqfd_generation_seen_ = irqfd_generation_;
    }
    irqfds_changed_.notify_all();
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      Log(LogLevel::kError, "split irqchip: poll failed: {}", std::strerror(errno));
      return;
    }
    uint64_t count = 0;
    if (fds[0].revents & POLLIN) {
      [[maybe_unused]] ssize_t n = ::read(fds[0].fd, &count, sizeof(count));
    }
    if (fds[1].revents & POLLIN) {
      [[maybe_unused]] ssize_t n = ::read(fds[1].fd, &count, sizeof(count));
      std::lock_guard lock(mu_);
      armed_ns_ = UINT64_MAX;  // expired: arm again whatever the next deadline is
      pc_.PollPit();
      ArmPitTimerLocked();
    }
    for (size_t i = 2; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      if (::read(fds[i].fd, &count, sizeof(count)) == sizeof(count)) RaisePin(gsis[i]);
    }
  }
}

void SplitIrqchip::ArmPitTimerLocked() {
  if (!timer_) return;  // no service thread (unit tests)
  const uint64_t next = pc_.NextPitEventNs();
  if (next == armed_ns_) return;
  itimerspec spec{};  // all zero disarms
  if (next != UINT64_MAX) {
    spec.it_value.tv_sec = static_cast<time_t>(next / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(next % 1'000'000'000);
    if (next == 0) spec.it_value.tv_nsec = 1;  // exactly 0 would disarm; a past time fires now
  }
  if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    Log(LogLevel::kWarn, "arming the PIT's timerfd: {}", std::strerror(errno));
    return;
  }
  armed_ns_ = next;
}

void SplitIrqchip::PollTimers() {
  std::lock_guard lock(mu_);
  pc_.PollPit();
  ArmPitTimerLocked();
}

void SplitIrqchip::SaveState(accel::VmSavedState& state) {
  std::lock_guard lock(mu_);
  pc_.SaveState(state);
}

Status SplitIrqchip::RestoreState(const accel::VmSavedState& state) {
  std::lock_guard lock(mu_);
  VIREO_TRY_STATUS(pc_.RestoreState(state));
  for (int pin = 0; pin < static_cast<int>(irqchip::Ioapic::kPins); ++pin) RedirectionWritten(pin);
  ArmPitTimerLocked();
  return {};
}

bool SplitIrqchip::HandlePio(bool is_write, uint16_t port, uint64_t* data) {
  if (!irqchip::PcIrqchip::ClaimsPort(port)) return false;
  std::lock_guard lock(mu_);
  pc_.HandlePio(is_write, port, data);
  // A new count or mode moves counter 0's next edge.
  if (is_write && port >= irqchip::Pit::kBasePort && port < irqchip::Pit::kBasePort + 4) {
    ArmPitTimerLocked();
  }
  return true;
}

bool SplitIrqchip::HandleMmio(bool is_write, uint64_t address, uint32_t size, uint64_t* data) {
  if (!irqchip::PcIrqchip::ClaimsMmio(address)) return false;
  std::lock_guard lock(mu_);
  return pc_.HandleIoapicMmio(is_write, address, size, data);
}

void SplitIrqchip::Eoi(uint8_t vector) {
  std::lock_guard lock(mu_);
  pc_.EoiLevel(vector);
}

SplitIrqchip::Entry SplitIrqchip::EnterGuest(bool ready_for_injection) {
  std::lock_guard lock(mu_);
  vcpu0_in_guest_ = true;
  Entry entry;
  switch (DecideExtInt(pc_.PicOutput(), ready_for_injection)) {
    case ExtIntAction::kNone:
      break;
    case ExtIntAction::kInject:
      entry.inject = pc_.PicAcknowledge();
      // Another IRQ still pending: come back once this one is taken.
      entry.request_window = pc_.PicOutput();
      break;
    case ExtIntAction::kRequestWindow:
      entry.request_window = true;
      break;
  }
  return entry;
}

void SplitIrqchip::LeaveGuest() {
  std::lock_guard lock(mu_);
  vcpu0_in_guest_ = false;
}

void SplitIrqchip::SetVcpu0Kick(std::function<void()> kick) {
  std::lock_guard lock(mu_);
  kick_vcpu0_ = std::move(kick);
}

bool SplitIrqchip::Deliver(const irqchip::ApicMessage& message) {
  if (message.delivery_mode == kExtInt) {
    // An IOAPIC pin in ExtINT mode (virtual wire): the PIC supplies the vector through vCPU
    // 0's INTA, as on a PC; KVM's LAPICs ignore ExtINT messages.
    PicOutputHigh();
    return true;
  }
  const MsiMessage msi = MsiFromApicMessage(message);
  return host_.DeliverMsi(msi.address, msi.data);
}

void SplitIrqchip::PicOutputHigh() {
  if (vcpu0_in_guest_ && kick_vcpu0_) kick_vcpu0_();
}

void SplitIrqchip::RedirectionWritten(int pin) {
  const MsiMessage msi = MsiFromRedirection(pc_.ioapic().redirection(pin));
  if (msi == mirrored_[pin]) return;
  mirrored_[pin] = msi;
  host_.RoutePinToMsi(pin, msi.address, msi.data);
}

}  // namespace vireo::kvm
