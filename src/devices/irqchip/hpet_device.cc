#include "devices/irqchip/hpet_device.h"

#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace vireo::irqchip {

Result<std::shared_ptr<HpetDevice>> HpetDevice::Create(const Clock& clock, EventLoop& loop,
                                                       Hpet::Callbacks callbacks) {
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
  if (!timer) return Fail("creating the HPET's timerfd: {}", std::strerror(errno));
  std::shared_ptr<HpetDevice> device(
      new HpetDevice(clock, loop, std::move(timer), std::move(callbacks)));
  HpetDevice* self = device.get();  // the handler is removed in the destructor
  VIREO_TRY_STATUS(loop.Add(device->timer_.get(), EPOLLIN, [self](uint32_t) { self->OnExpiry(); }));
  return device;
}

HpetDevice::HpetDevice(const Clock& clock, EventLoop& loop, UniqueFd timer,
                       Hpet::Callbacks callbacks)
    : loop_(loop), timer_(std::move(timer)), hpet_(clock, std::move(callbacks)) {}

HpetDevice::~HpetDevice() { (void)loop_.Remove(timer_.get()); }

void HpetDevice::Read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  // A read may be the guest polling for an overdue interrupt: deliver it first.
  Update();
  const uint64_t value = hpet_.Read(offset, static_cast<uint32_t>(data.size()));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(value >> (8 * i));
}

void HpetDevice::Write(uint64_t offset, std::span<const uint8_t> data) {
  uint64_t value = 0;
  for (size_t i = 0; i < data.size() && i < 8; ++i) value |= uint64_t{data[i]} << (8 * i);
  std::lock_guard lock(mu_);
  hpet_.Write(offset, static_cast<uint32_t>(data.size()), value);
  Update();
}

void HpetDevice::OnExpiry() {
  uint64_t expirations = 0;
  (void)!::read(timer_.get(), &expirations, sizeof(expirations));  // non-blocking; may be 0
  std::lock_guard lock(mu_);
  armed_ns_ = UINT64_MAX;
  Update();
}

void HpetDevice::Update() {
  hpet_.Poll();
  const uint64_t next = hpet_.NextEventNs();
  if (next == armed_ns_) return;
  itimerspec spec{};  // all zero disarms
  if (next != UINT64_MAX) {
    spec.it_value.tv_sec = static_cast<time_t>(next / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(next % 1'000'000'000);
    // A deadline of exactly 0 would disarm; a past one fires at once.
    if (next == 0) spec.it_value.tv_nsec = 1;
  }
  if (::timerfd_settime(timer_.get(), TFD_TIMER_ABSTIME, &spec, nullptr) != 0) {
    Log(LogLevel::kWarn, "arming the HPET's timerfd: {}", std::strerror(errno));
    return;
  }
  armed_ns_ = next;
}

HpetState HpetDevice::SaveState() {
  // No Poll here: the VM's interrupt controllers are saved already, so a match that is due
  // stays due in the state and fires on the restored side.
  std::lock_guard lock(mu_);
  return hpet_.SaveState();
}

Status HpetDevice::RestoreState(const HpetState& state) {
  std::lock_guard lock(mu_);
  VIREO_TRY_STATUS(hpet_.RestoreState(state));
  Update();
  return {};
}

}  // namespace vireo::irqchip
