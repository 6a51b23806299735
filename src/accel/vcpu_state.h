// Accelerator-neutral saved state of a vCPU and of the VM's platform devices that live in
// the accelerator (interrupt controllers, PIT, clock), for snapshots. Plain data named after
// the hardware (Intel SDM, 8259A/82093AA/8254 datasheets), so a snapshot taken on KVM
// restores on the software CPU and back. The KVM backend converts in kvm_state.cc.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "accel/cpu_state.h"

namespace vireo::accel {

// Multiprocessor state of a vCPU (KVM's numbering, which follows the SDM's wait states).
enum class MpState : uint32_t {
  kRunnable = 0,
  kUninitialized = 1,
  kInitReceived = 2,
  kHalted = 3,
  kSipiReceived = 4,
};

// Events in flight at the instant of the save: an exception or interrupt being delivered,
// NMI and SMI state, the interrupt shadow (STI/MOV SS), and a pending SIPI vector.
struct VcpuEvents {
  bool exception_injected = false;
  uint8_t exception_nr = 0;
  bool exception_has_error_code = false;
  bool exception_pending = false;
  uint32_t exception_error_code = 0;
  bool interrupt_injected = false;
  uint8_t interrupt_nr = 0;
  bool interrupt_soft = false;
  uint8_t interrupt_shadow = 0;
  bool nmi_injected = false;
  bool nmi_pending = false;
  bool nmi_masked = false;
  uint32_t sipi_vector = 0;
  bool smm = false;
  bool smm_pending = false;
  bool smm_inside_nmi = false;
  uint8_t smm_latched_init = 0;
};

struct DebugRegisters {
  std::array<uint64_t, 4> db{};
  uint64_t dr6 = 0;
  uint64_t dr7 = 0;
};

struct XcrEntry {
  uint32_t index = 0;
  uint64_t value = 0;
};

struct VcpuSavedState {
  std::vector<CpuidEntry> cpuid;
  Registers regs;
  SpecialRegisters sregs;
  std::vector<uint8_t> xsave;  // the raw XSAVE area in the standard (non-compacted) format
  std::vector<XcrEntry> xcrs;
  std::vector<MsrEntry> msrs;
  std::vector<uint8_t> lapic;  // the local APIC's 1 KiB register page (SDM Table 10-1)
  MpState mp_state = MpState::kRunnable;
  VcpuEvents events;
  DebugRegisters debug;
};

// One 8259A (the master or the slave), its internal registers.
struct PicState {
  uint8_t last_irr = 0, irr = 0, imr = 0, isr = 0, priority_add = 0, irq_base = 0;
  uint8_t read_reg_select = 0, poll = 0, special_mask = 0, init_state = 0, auto_eoi = 0;
  uint8_t rotate_on_auto_eoi = 0, special_fully_nested_mode = 0, init4 = 0, elcr = 0;
  uint8_t elcr_mask = 0;
};

// The 82093AA IOAPIC.
struct IoApicState {
  uint64_t base_address = 0;
  uint32_t ioregsel = 0;
  uint32_t id = 0;
  uint32_t irr = 0;
  std::array<uint64_t, 24> redirection{};
};

// One 8254 PIT counter.
struct PitChannelState {
  uint32_t count = 0;
  uint16_t latched_count = 0;
  uint8_t count_latched = 0, status_latched = 0, status = 0, read_state = 0, write_state = 0;
  uint8_t write_latch = 0, rw_mode = 0, mode = 0, bcd = 0, gate = 0;
  // When the count was loaded, on the host's CLOCK_MONOTONIC in ns (KVM's ktime); a restore
  // rebases it by VmSavedState::saved_at_ns, so the count continues where it stopped.
  int64_t count_load_time = 0;
};

struct PitState {
  std::array<PitChannelState, 3> channels{};
  uint32_t flags = 0;
};

struct VmSavedState {
  PicState pic_master, pic_slave;
  IoApicState ioapic;
  PitState pit;
  uint64_t clock_ns = 0;  // the guest's kvm-clock (paravirtual clock) at the save
  // The host's CLOCK_MONOTONIC (ns) at the save: the time line of the PIT's count_load_time,
  // so a restore knows how far each count had run. 0: unknown (format version 1).
  uint64_t saved_at_ns = 0;
};

}  // namespace vireo::accel
