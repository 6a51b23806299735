// SplitIrqchip: the userspace half of KVM's split irqchip (KVM_CAP_SPLIT_IRQCHIP, `vireo run
// --irqchip split`). The LAPICs stay in KVM; the IOAPIC, dual PIC and PIT are Vireo's models
// wired as on a PC by PcIrqchip (the same wiring the software CPU uses), with this APIC bus:
//
//  - an IOAPIC message becomes the MSI that carries it, sent with KVM_SIGNAL_MSI;
//  - GSIs 0-23 of KVM's routing table are MSI routes mirroring the redirection entries (as
//    QEMU's ioapic_update_kvm_routes), so KVM knows which vectors are level-triggered and,
//    when a LAPIC EOIs one, exits with KVM_EXIT_IOAPIC_EOI; Eoi() then clears Remote IRR
//    and redelivers while the line is high;
//  - the PIC's INT reaches vCPU 0 as ExtINT: before each KVM_RUN vCPU 0 asks EnterGuest(),
//    which acknowledges the PIC (INTA) for KVM_INTERRUPT when kvm_run says the vCPU is ready
//    for injection, or asks for an interrupt window (KVM_EXIT_IRQ_WINDOW_OPEN) otherwise; a
//    PIC line rising while vCPU 0 is inside KVM_RUN (HLT included) kicks it out;
//  - the PIT's counter 0 fires from a timerfd on this object's service thread, which also
//    reads the irqfds on IOAPIC pins (below).
//
// Irqfds on pins 0-23 (virtio-mmio) are read by the service thread and raised through the
// models, not given to KVM: a KVM irqfd on a mirrored MSI route would bypass the IOAPIC's
// mask and Remote IRR and the PIC input of an ISA IRQ. The cost is one thread hop per
// interrupt, for virtio-mmio only; PCI MSI-X routes (GSIs 24+) stay KVM irqfds.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/deadline_timer.h"
#include "base/result.h"
#include "devices/irqchip/clock.h"
#include "devices/irqchip/irqfd_reader.h"
#include "devices/irqchip/pc_irqchip.h"

namespace vireo::kvm {

// What the split irqchip asks of KVM; KvmVm implements it, unit tests fake it.
class SplitIrqchipHost {
 public:
  virtual ~SplitIrqchipHost() = default;
  // KVM_SIGNAL_MSI: true when a LAPIC accepted the message.
  virtual bool DeliverMsi(uint64_t address, uint32_t data) = 0;
  // Makes GSI `pin`'s routing entry the MSI (address, data) and commits the table.
  virtual void RoutePinToMsi(int pin, uint64_t address, uint32_t data) = 0;
};

struct MsiMessage {
  uint64_t address = 0;
  uint32_t data = 0;
  bool operator==(const MsiMessage&) const = default;
};
// The MSI that carries an APIC message (SDM Vol. 3 11.11.1/11.11.2: destination in address
// bits 19:12, destination mode bit 2; vector, delivery mode and trigger mode in the data).
MsiMessage MsiFromApicMessage(const irqchip::ApicMessage& m);
// The MSI that redirection entry `entry` sends (82093AA 3.2.4), masked or not.
MsiMessage MsiFromRedirection(uint64_t entry);

// vCPU 0 before KVM_RUN, with the PIC's INT output and kvm_run's ready_for_interrupt_injection
// (which KVM computes from RFLAGS.IF, the interrupt shadow, LINT0 and a pending ExtINT).
enum class ExtIntAction { kNone, kInject, kRequestWindow };
ExtIntAction DecideExtInt(bool pic_output, bool ready_for_injection);

class SplitIrqchip final : public irqchip::PcIrqchip::ApicBus {
 public:
  // Without Start(): no service thread (unit tests poll the PIT themselves).
  SplitIrqchip(SplitIrqchipHost& host, int vcpu_count, const irqchip::Clock& clock);
  ~SplitIrqchip() override;
  SplitIrqchip(const SplitIrqchip&) = delete;
  SplitIrqchip& operator=(const SplitIrqchip&) = delete;

  // Starts the service thread (the PIT's timerfd, the irqfds). `clock` must be a
  // MonotonicClock then: the timerfd is armed with the PIT's absolute deadlines.
  Status Start();
  // The routing entries for GSIs 0-23 that mirror the reset redirection table.
  std::array<MsiMessage, irqchip::Ioapic::kPins> PinRoutes();

  // Devices' side (any thread).
  void SetIrqLine(uint32_t gsi, bool level);
  void SetPitIrqEnabled(bool enabled);
  Status AddIrqFd(uint32_t gsi, int event_fd);
  // Returns once the service thread no longer reads the fd (the caller may close it).
  Status RemoveIrqFd(uint32_t gsi, int event_fd);

  // vCPU exits the models own: true when claimed. `data` holds an OUT's value or gets an IN's.
  bool HandlePio(bool is_write, uint16_t port, uint64_t* data);
  bool HandleMmio(bool is_write, uint64_t address, uint32_t size, uint64_t* data);
  // KVM_EXIT_IOAPIC_EOI: a LAPIC EOIed level-triggered `vector`.
  void Eoi(uint8_t vector);
  // Fires the PIT's due edges (the service thread does this on its timerfd).
  void PollTimers();
  // Snapshots: the models' part of the VM's state (the LAPICs are KVM's, saved per vCPU).
  // Restore also re-mirrors the pins' routes and re-arms the PIT's timer.
  void SaveState(accel::VmSavedState& state);
  Status RestoreState(const accel::VmSavedState& state);

  // vCPU 0 around KVM_RUN. EnterGuest marks it inside (so a rising PIC line kicks it) and
  // says what to do first: KVM_INTERRUPT with `inject` (already acknowledged at the PIC),
  // and kvm_run->request_interrupt_window.
  struct Entry {
    std::optional<uint8_t> inject;
    bool request_window = false;
  };
  // Lock-free unless the PIC's output may be high.
  Entry EnterGuest(bool ready_for_injection);
  void LeaveGuest();
  // How to kick vCPU 0 out of KVM_RUN (only called between EnterGuest and LeaveGuest, so its
  // thread is alive); empty to forget it.
  void SetVcpu0Kick(std::function<void()> kick);

  // PcIrqchip::ApicBus, with mu_ held.
  bool Deliver(const irqchip::ApicMessage& message) override;
  void PicOutputHigh() override;
  void RedirectionWritten(int pin) override;

 private:
  void OnPitTimer();  // the timerfd fired, on the reader's thread
  void ArmPitTimerLocked();
  void RaisePin(uint32_t gsi);

  SplitIrqchipHost& host_;
  std::mutex mu_;  // the models, the mirrored routes, vCPU 0's state
  irqchip::PcIrqchip pc_;
  std::array<MsiMessage, irqchip::Ioapic::kPins> mirrored_{};
  std::function<void()> kick_vcpu0_;
  // vCPU 0 is between EnterGuest and LeaveGuest. Atomic, as is pic_pending_, so that vCPU 0
  // takes mu_ around KVM_RUN only when the PIC may have something for it.
  std::atomic<bool> vcpu0_in_guest_{false};
  // The PIC's output may be high: set on every rise (PicOutputHigh) and re-read from the
  // model, under mu_, wherever it may have changed otherwise.
  std::atomic<bool> pic_pending_{false};
  std::optional<DeadlineTimer> timer_;  // the PIT's timerfd (after Start); guarded by mu_
  // The service thread (after Start): the pins' irqfds and the PIT's timerfd. Last, so it
  // stops before the rest goes.
  std::unique_ptr<irqchip::IrqFdReader> irqfds_;
};

}  // namespace vireo::kvm
