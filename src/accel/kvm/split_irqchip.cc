#include "accel/kvm/split_irqchip.h"

#include <algorithm>

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

SplitIrqchip::~SplitIrqchip() = default;

std::array<MsiMessage, irqchip::Ioapic::kPins> SplitIrqchip::PinRoutes() {
  std::lock_guard lock(mu_);
  return mirrored_;
}

Status SplitIrqchip::Start() {
  timer_.emplace(VIREO_TRY(DeadlineTimer::Create("the PIT's timerfd")));
  irqfds_ = std::make_unique<irqchip::IrqFdReader>(
      "split irqchip", [this](uint32_t gsi) { RaisePin(gsi); }, timer_->fd(),
      [this] { OnPitTimer(); });
  return irqfds_->Start();
}

void SplitIrqchip::OnPitTimer() {
  std::lock_guard lock(mu_);
  timer_->Expired();
  pc_.PollPit();
  ArmPitTimerLocked();
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
  if (!irqfds_) return Fail("the split irqchip's thread is not started");
  return irqfds_->Add(gsi, event_fd);
}

Status SplitIrqchip::RemoveIrqFd(uint32_t gsi, int event_fd) {
  if (!irqfds_) return Fail("no irqfd is registered for GSI {}", gsi);
  return irqfds_->Remove(gsi, event_fd);
}

void SplitIrqchip::ArmPitTimerLocked() {
  if (timer_) timer_->Arm(pc_.NextPitEventNs());  // no timer: no service thread (unit tests)
}

void SplitIrqchip::PollTimers() {
  std::lock_guard lock(mu_);
  pc_.PollPit();
  ArmPitTimerLocked();
}

void SplitIrqchip::SaveState(accel::VmSavedState& state) {
  if (irqfds_) irqfds_->Drain();  // a pin's interrupt still in its eventfd is saved too
  std::lock_guard lock(mu_);
  pc_.SaveState(state);
}

Status SplitIrqchip::RestoreState(const accel::VmSavedState& state) {
  std::lock_guard lock(mu_);
  VIREO_TRY_STATUS(pc_.RestoreState(state));
  for (int pin = 0; pin < static_cast<int>(irqchip::Ioapic::kPins); ++pin) RedirectionWritten(pin);
  ArmPitTimerLocked();
  pic_pending_.store(pc_.PicOutput());  // restored with an IRQ pending: vCPU 0 takes it
  return {};
}

bool SplitIrqchip::HandlePio(bool is_write, uint16_t port, uint64_t* data) {
  if (!irqchip::PcIrqchip::ClaimsPort(port)) return false;
  std::lock_guard lock(mu_);
  pc_.HandlePio(is_write, port, data);
  // Whatever a PIC or ELCR write did to the PIC's output, vCPU 0 looks again at its next entry.
  if (is_write) pic_pending_.store(pc_.PicOutput());
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
  // Without the lock in the common case (the PIC's output low). Both flags are sequentially
  // consistent: either this load sees a rise that PicOutputHigh flagged, or PicOutputHigh
  // sees vCPU 0 inside and kicks it (a kick before KVM_RUN makes it return at once).
  vcpu0_in_guest_.store(true);
  Entry entry;
  if (!pic_pending_.load()) return entry;
  std::lock_guard lock(mu_);
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
  pic_pending_.store(pc_.PicOutput());
  return entry;
}

void SplitIrqchip::LeaveGuest() { vcpu0_in_guest_.store(false); }

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
  pic_pending_.store(true);
  if (vcpu0_in_guest_.load() && kick_vcpu0_) kick_vcpu0_();
}

void SplitIrqchip::RedirectionWritten(int pin) {
  const MsiMessage msi = MsiFromRedirection(pc_.ioapic().redirection(pin));
  if (msi == mirrored_[pin]) return;
  mirrored_[pin] = msi;
  host_.RoutePinToMsi(pin, msi.address, msi.data);
}

}  // namespace vireo::kvm
