#include "devices/irqchip/hpet_device.h"

namespace vireo::irqchip {

Result<std::shared_ptr<HpetDevice>> HpetDevice::Create(const Clock& clock, EventLoop& loop,
                                                       Hpet::Callbacks callbacks) {
  DeadlineTimer timer = VIREO_TRY(DeadlineTimer::Create("the HPET's timerfd"));
  std::shared_ptr<HpetDevice> device(
      new HpetDevice(clock, loop, std::move(timer), std::move(callbacks)));
  HpetDevice* self = device.get();  // the handler is removed in the destructor
  VIREO_TRY_STATUS(loop.Add(device->timer_.fd(), EPOLLIN, [self](uint32_t) { self->OnExpiry(); }));
  return device;
}

HpetDevice::HpetDevice(const Clock& clock, EventLoop& loop, DeadlineTimer timer,
                       Hpet::Callbacks callbacks)
    : loop_(loop), timer_(std::move(timer)), hpet_(clock, std::move(callbacks)) {}

HpetDevice::~HpetDevice() { (void)loop_.Remove(timer_.fd()); }

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
  std::lock_guard lock(mu_);
  timer_.Expired();
  Update();
}

void HpetDevice::Update() {
  hpet_.Poll();
  timer_.Arm(hpet_.NextEventNs());
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
