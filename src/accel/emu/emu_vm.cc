#include "accel/emu/emu_vm.h"

#include <unistd.h>

#include <algorithm>

#include "accel/emu/emu_cpuid.h"
#include "accel/emu/emu_vcpu.h"
#include "base/log.h"

namespace vireo::emu {
namespace {

bool SameEvent(const accel::Vm::IoEvent& a, const accel::Vm::IoEvent& b) {
  return a.mmio == b.mmio && a.address == b.address && a.length == b.length &&
         a.datamatch == b.datamatch;
}

}  // namespace

Status EmuVm::MapMemory(const GuestMemory& memory) {
  if (memory_ != nullptr) return Fail("guest memory is already mapped into this emu VM");
  memory_ = &memory;
  dirty_log_ = std::make_unique<DirtyLog>(memory);
  return {};
}

Result<std::unique_ptr<accel::Vcpu>> EmuVm::CreateVcpu(int id) {
  if (memory_ == nullptr) return Fail("map guest memory before creating vCPUs");
  if (id < 0 || id >= vcpu_count_) {
    return Fail("vCPU id {} is outside this VM's {} vCPUs", id, vcpu_count_);
  }
  return std::unique_ptr<accel::Vcpu>(
      std::make_unique<EmuVcpu>(id, *this, *memory_, dirty_log_.get()));
}

Status EmuVm::SetIrqLine(uint32_t /*gsi*/, bool level) {
  if (level) undelivered_.fetch_add(1, std::memory_order_relaxed);
  return {};
}

Result<std::vector<accel::CpuidEntry>> EmuVm::SupportedCpuid() { return emu::SupportedCpuid(); }

Status EmuVm::AddIoEvent(const IoEvent& event, int event_fd) {
  if (event.length != 0 && event.length != 1 && event.length != 2 && event.length != 4 &&
      event.length != 8) {
    return Fail("ioeventfd length {} is not 0, 1, 2, 4 or 8", event.length);
  }
  std::lock_guard lock(io_events_mutex_);
  for (const Registered& r : io_events_) {
    if (SameEvent(r.event, event)) {
      return Fail("an ioeventfd is already registered at {:#x}", event.address);
    }
  }
  io_events_.push_back({event, event_fd});
  return {};
}

Status EmuVm::RemoveIoEvent(const IoEvent& event, int event_fd) {
  std::lock_guard lock(io_events_mutex_);
  auto it = std::find_if(io_events_.begin(), io_events_.end(), [&](const Registered& r) {
    return r.fd == event_fd && SameEvent(r.event, event);
  });
  if (it == io_events_.end()) return Fail("no ioeventfd is registered at {:#x}", event.address);
  io_events_.erase(it);
  return {};
}

bool EmuVm::SignalIoEvent(bool mmio, uint64_t address, uint32_t size, uint64_t value) {
  std::lock_guard lock(io_events_mutex_);
  for (const Registered& r : io_events_) {
    const IoEvent& e = r.event;
    if (e.mmio != mmio || e.address != address) continue;
    if (e.length != 0 && e.length != size) continue;
    if (e.datamatch && *e.datamatch != value) continue;
    const uint64_t one = 1;
    // An eventfd write only fails when the counter would overflow: the reader is far behind
    // and will see a non-zero count anyway.
    [[maybe_unused]] ssize_t n = ::write(r.fd, &one, sizeof(one));
    return true;
  }
  return false;
}

Status EmuVm::AddIrqFd(uint32_t gsi, int event_fd) {
  irqfds_.emplace_back(gsi, event_fd);
  return {};
}

Status EmuVm::RemoveIrqFd(uint32_t gsi, int event_fd) {
  auto it = std::find(irqfds_.begin(), irqfds_.end(), std::make_pair(gsi, event_fd));
  if (it == irqfds_.end()) return Fail("no irqfd is registered for GSI {}", gsi);
  irqfds_.erase(it);
  return {};
}

Status EmuVm::SignalMsi(uint64_t /*address*/, uint32_t /*data*/) {
  undelivered_.fetch_add(1, std::memory_order_relaxed);
  return {};
}

Result<uint32_t> EmuVm::AddMsiRoute(uint64_t /*address*/, uint32_t /*data*/) {
  return next_msi_gsi_++;
}

Result<accel::VmSavedState> EmuVm::SaveState() {
  accel::VmSavedState s;
  s.pic_master.imr = s.pic_slave.imr = 0xff;
  s.pic_master.elcr_mask = 0xf8;  // IRQs 0-2 are always edge (KVM's mask)
  s.pic_slave.elcr_mask = 0xde;
  s.ioapic.base_address = 0xfec00000;
  for (uint64_t& entry : s.ioapic.redirection) entry = uint64_t{1} << 16;  // masked
  return s;
}

Status EmuVm::RestoreState(const accel::VmSavedState& /*state*/) {
  Log(LogLevel::kInfo, "software CPU: the saved PIC, IOAPIC and PIT are not emulated yet; skipped");
  return {};
}

Status EmuVm::StartDirtyLog() {
  if (!dirty_log_) return Fail("map guest memory before starting the dirty log");
  dirty_log_->Start();
  return {};
}

Result<std::vector<std::vector<uint64_t>>> EmuVm::FetchDirtyPages() {
  if (!dirty_log_ || !dirty_log_->enabled()) return Fail("the dirty log is not started");
  return dirty_log_->Fetch();
}

}  // namespace vireo::emu
