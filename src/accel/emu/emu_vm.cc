#include "accel/emu/emu_vm.h"

#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "accel/emu/emu_cpuid.h"
#include "accel/emu/emu_vcpu.h"
#include "base/log.h"

namespace vireo::emu {
namespace {

bool SameEvent(const accel::Vm::IoEvent& a, const accel::Vm::IoEvent& b) {
  return a.mmio == b.mmio && a.address == b.address && a.length == b.length &&
         a.datamatch == b.datamatch;
}

constexpr uint32_t kFirstMsiGsi = 24;  // after the IOAPIC's pins, as on KVM

// The host TSC's rate (the vCPUs' RDTSC is the host's), measured once against the monotonic
// clock over 10 ms: it only sizes the sleeps of a vCPU halted on a TSC deadline, which the
// TSC itself decides exactly, so 0.01% error is plenty.
uint64_t HostTscHz() {
  static const uint64_t hz = [] {
    using Steady = std::chrono::steady_clock;
    const auto t0 = Steady::now();
    const uint64_t c0 = __rdtsc();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const auto t1 = Steady::now();
    const uint64_t c1 = __rdtsc();
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
    return ns > 0 ? static_cast<uint64_t>(static_cast<double>(c1 - c0) * 1e9 / ns) : 0;
  }();
  return hz;
}

}  // namespace

EmuVm::EmuVm(int vcpu_count)
    : vcpu_count_(vcpu_count),
      vcpus_(std::make_unique<std::atomic<EmuVcpu*>[]>(static_cast<size_t>(vcpu_count))) {
  for (int i = 0; i < vcpu_count; ++i) vcpus_[i].store(nullptr);
  if (vcpu_count > 1) code_tracker_ = std::make_unique<CodeTracker>();
  platform_ = std::make_unique<EmuPlatform>(
      vcpu_count, clock_,
      [this](int id) {
        if (EmuVcpu* v = vcpus_[id].load(std::memory_order_acquire)) v->WakeForInterrupt();
      },
      HostTscHz());
}

EmuVm::~EmuVm() = default;

void EmuVm::SetVcpu(int id, EmuVcpu* vcpu) {
  if (id >= 0 && id < vcpu_count_) vcpus_[id].store(vcpu, std::memory_order_release);
}

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

Status EmuVm::SetIrqLine(uint32_t gsi, bool level) {
  if (gsi >= irqchip::Ioapic::kPins) {
    if (level) RaiseGsi(gsi);  // an MSI route (unknown GSIs are dropped, as on KVM)
    return {};
  }
  platform_->SetIrqLine(gsi, level);
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

Status EmuVm::AddIrqFd(uint32_t gsi, int event_fd) { return irqfds_.Add(gsi, event_fd); }

Status EmuVm::RemoveIrqFd(uint32_t gsi, int event_fd) { return irqfds_.Remove(gsi, event_fd); }

void EmuVm::RaiseGsi(uint32_t gsi) {
  if (gsi >= kFirstMsiGsi) {
    std::pair<uint64_t, uint32_t> msi;
    {
      std::lock_guard lock(msi_routes_mutex_);
      if (gsi - kFirstMsiGsi >= msi_routes_.size()) return;
      msi = msi_routes_[gsi - kFirstMsiGsi];
    }
    platform_->SignalMsi(msi.first, msi.second);
    return;
  }
  // An irqfd on a pin is an edge, as KVM's irqfd (assert, then de-assert).
  platform_->SetIrqLine(gsi, true);
  platform_->SetIrqLine(gsi, false);
}

Status EmuVm::SignalMsi(uint64_t address, uint32_t data) {
  platform_->SignalMsi(address, data);
  return {};
}

Result<uint32_t> EmuVm::AddMsiRoute(uint64_t address, uint32_t data) {
  std::lock_guard lock(msi_routes_mutex_);
  msi_routes_.emplace_back(address, data);
  return static_cast<uint32_t>(kFirstMsiGsi + msi_routes_.size() - 1);
}

Result<accel::VmSavedState> EmuVm::SaveState() {
  irqfds_.Drain();  // an interrupt still in an eventfd goes into the saved controllers
  return platform_->SaveState();
}

Status EmuVm::RestoreState(const accel::VmSavedState& state) {
  // The PIT's count_load_time is on the host's CLOCK_MONOTONIC, the clock_ the platform runs
  // on; clock_ns (kvm-clock) has no software-CPU counterpart and stays 0.
  return platform_->RestoreState(state);
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
