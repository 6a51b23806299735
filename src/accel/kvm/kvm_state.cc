// Snapshot state for the KVM backend: vCPU state (Documentation/virt/kvm/api.rst §4) and the
// in-kernel irqchip, PIT and clock, converted to and from accel/vcpu_state.h.
//
// Restore order follows Firecracker (vstate/vcpu.rs) and QEMU (target/i386/kvm):
// CPUID first (it decides which MSRs and XSAVE features exist), MP state, registers, special
// registers (EFER and APIC base before the LAPIC page), XSAVE, XCRs, debug registers, the
// LAPIC, MSRs (the TSC among them), and the pending events last, so nothing set after them
// can cancel an injected event. The VM's PIT, clock and irqchip are restored before any vCPU.
#include <linux/kvm.h>
#include <sys/ioctl.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "accel/kvm/kvm_abi.h"
#include "accel/kvm/kvm_vcpu.h"
#include "accel/kvm/kvm_vm.h"

namespace vireo::kvm {
namespace {

constexpr size_t kLapicSize = sizeof(kvm_lapic_state::regs);
static_assert(kLapicSize == 1024);
constexpr uint32_t kMaxMsrs = 4096;  // sanity bound on KVM_GET_MSR_INDEX_LIST

Status Ioctl(int fd, unsigned long request, void* arg, const char* name) {
  if (::ioctl(fd, request, arg) < 0) return Fail("{} failed: {}", name, std::strerror(errno));
  return {};
}

Result<std::vector<uint32_t>> MsrIndexList(int kvm_fd) {
  std::vector<uint8_t> buffer(sizeof(kvm_abi::MsrListHeader) + kMaxMsrs * sizeof(uint32_t));
  auto* header = reinterpret_cast<kvm_abi::MsrListHeader*>(buffer.data());
  header->nmsrs = kMaxMsrs;
  VIREO_TRY_STATUS(
      Ioctl(kvm_fd, kvm_abi::kGetMsrIndexList, buffer.data(), "KVM_GET_MSR_INDEX_LIST"));
  std::vector<uint32_t> out(header->nmsrs);
  std::memcpy(out.data(), buffer.data() + sizeof(*header), out.size() * sizeof(uint32_t));
  return out;
}

accel::PicState FromKvm(const kvm_pic_state& k) {
  return {k.last_irr,
          k.irr,
          k.imr,
          k.isr,
          k.priority_add,
          k.irq_base,
          k.read_reg_select,
          k.poll,
          k.special_mask,
          k.init_state,
          k.auto_eoi,
          k.rotate_on_auto_eoi,
          k.special_fully_nested_mode,
          k.init4,
          k.elcr,
          k.elcr_mask};
}

kvm_pic_state ToKvm(const accel::PicState& s) {
  kvm_pic_state k{};
  k.last_irr = s.last_irr, k.irr = s.irr, k.imr = s.imr, k.isr = s.isr;
  k.priority_add = s.priority_add, k.irq_base = s.irq_base;
  k.read_reg_select = s.read_reg_select, k.poll = s.poll, k.special_mask = s.special_mask;
  k.init_state = s.init_state, k.auto_eoi = s.auto_eoi;
  k.rotate_on_auto_eoi = s.rotate_on_auto_eoi;
  k.special_fully_nested_mode = s.special_fully_nested_mode, k.init4 = s.init4;
  k.elcr = s.elcr, k.elcr_mask = s.elcr_mask;
  return k;
}

}  // namespace

Result<std::vector<accel::CpuidEntry>> KvmVcpu::GetCpuid() {
  std::vector<uint8_t> buffer(sizeof(kvm_abi::Cpuid2Header) +
                              kvm_abi::kMaxCpuidEntries * sizeof(kvm_cpuid_entry2));
  auto* header = reinterpret_cast<kvm_abi::Cpuid2Header*>(buffer.data());
  header->nent = kvm_abi::kMaxCpuidEntries;
  VIREO_TRY_STATUS(Ioctl(fd_.get(), kvm_abi::kGetCpuid2, buffer.data(), "KVM_GET_CPUID2"));
  const auto* raw =
      reinterpret_cast<const kvm_cpuid_entry2*>(buffer.data() + sizeof(kvm_abi::Cpuid2Header));
  std::vector<accel::CpuidEntry> out;
  for (uint32_t i = 0; i < header->nent && i < kvm_abi::kMaxCpuidEntries; ++i) {
    out.push_back({raw[i].function, raw[i].index, raw[i].flags, raw[i].eax, raw[i].ebx, raw[i].ecx,
                   raw[i].edx});
  }
  return out;
}

Result<accel::VcpuSavedState> KvmVcpu::SaveState() {
  accel::VcpuSavedState s;
  s.cpuid = VIREO_TRY(GetCpuid());
  kvm_mp_state mp{};
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_MP_STATE, &mp, "KVM_GET_MP_STATE"));
  s.mp_state = static_cast<accel::MpState>(mp.mp_state);
  s.regs = VIREO_TRY(GetRegisters());
  s.sregs = VIREO_TRY(GetSpecialRegisters());

  s.xsave.resize(kvm_abi::kXsaveSize);
  VIREO_TRY_STATUS(Ioctl(fd_.get(), kvm_abi::kGetXsave, s.xsave.data(), "KVM_GET_XSAVE"));
  kvm_xcrs xcrs{};
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_XCRS, &xcrs, "KVM_GET_XCRS"));
  for (uint32_t i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; ++i) {
    s.xcrs.push_back({xcrs.xcrs[i].xcr, xcrs.xcrs[i].value});
  }
  kvm_debugregs debug{};
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_DEBUGREGS, &debug, "KVM_GET_DEBUGREGS"));
  for (size_t i = 0; i < 4; ++i) s.debug.db[i] = debug.db[i];
  s.debug.dr6 = debug.dr6;
  s.debug.dr7 = debug.dr7;
  kvm_lapic_state lapic{};
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_LAPIC, &lapic, "KVM_GET_LAPIC"));
  s.lapic.assign(reinterpret_cast<const uint8_t*>(lapic.regs),
                 reinterpret_cast<const uint8_t*>(lapic.regs) + kLapicSize);

  // Every MSR KVM lists. Some are listed but not readable for this vCPU's CPUID (KVM_GET_MSRS
  // stops at the first one it refuses): skip that one and read on.
  std::vector<uint32_t> pending = VIREO_TRY(MsrIndexList(kvm_fd_));
  while (!pending.empty()) {
    auto got = VIREO_TRY(GetMsrs(pending));
    s.msrs.insert(s.msrs.end(), got.begin(), got.end());
    const size_t consumed = std::min(pending.size(), got.size() + 1);
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(consumed));
  }

  kvm_vcpu_events ev{};
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_VCPU_EVENTS, &ev, "KVM_GET_VCPU_EVENTS"));
  accel::VcpuEvents& e = s.events;
  e.exception_injected = ev.exception.injected, e.exception_nr = ev.exception.nr;
  e.exception_has_error_code = ev.exception.has_error_code;
  e.exception_pending = ev.exception.pending, e.exception_error_code = ev.exception.error_code;
  e.interrupt_injected = ev.interrupt.injected, e.interrupt_nr = ev.interrupt.nr;
  e.interrupt_soft = ev.interrupt.soft, e.interrupt_shadow = ev.interrupt.shadow;
  e.nmi_injected = ev.nmi.injected, e.nmi_pending = ev.nmi.pending, e.nmi_masked = ev.nmi.masked;
  e.sipi_vector = ev.sipi_vector;
  e.smm = ev.smi.smm, e.smm_pending = ev.smi.pending, e.smm_inside_nmi = ev.smi.smm_inside_nmi;
  e.smm_latched_init = ev.smi.latched_init;
  return s;
}

Status KvmVcpu::RestoreState(const accel::VcpuSavedState& s) {
  if (s.xsave.size() != kvm_abi::kXsaveSize) {
    return Fail("vCPU {}: the saved XSAVE area is {} bytes; KVM takes {}", id_, s.xsave.size(),
                kvm_abi::kXsaveSize);
  }
  if (s.lapic.size() != kLapicSize) {
    return Fail("vCPU {}: the saved LAPIC page is {} bytes, not {}", id_, s.lapic.size(),
                kLapicSize);
  }
  if (s.xcrs.size() > KVM_MAX_XCRS) return Fail("vCPU {}: {} XCRs saved", id_, s.xcrs.size());
  VIREO_TRY_STATUS(SetCpuid(s.cpuid));
  kvm_mp_state mp{static_cast<uint32_t>(s.mp_state)};
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_SET_MP_STATE, &mp, "KVM_SET_MP_STATE"));
  VIREO_TRY_STATUS(SetRegisters(s.regs));
  VIREO_TRY_STATUS(SetSpecialRegisters(s.sregs));
  std::vector<uint8_t> xsave = s.xsave;  // the ioctl takes a mutable pointer
  VIREO_TRY_STATUS(Ioctl(fd_.get(), kvm_abi::kSetXsave, xsave.data(), "KVM_SET_XSAVE"));
  kvm_xcrs xcrs{};
  xcrs.nr_xcrs = static_cast<uint32_t>(s.xcrs.size());
  for (size_t i = 0; i < s.xcrs.size(); ++i) {
    xcrs.xcrs[i].xcr = s.xcrs[i].index;
    xcrs.xcrs[i].value = s.xcrs[i].value;
  }
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_SET_XCRS, &xcrs, "KVM_SET_XCRS"));
  kvm_debugregs debug{};
  for (size_t i = 0; i < 4; ++i) debug.db[i] = s.debug.db[i];
  debug.dr6 = s.debug.dr6;
  debug.dr7 = s.debug.dr7;
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_SET_DEBUGREGS, &debug, "KVM_SET_DEBUGREGS"));
  kvm_lapic_state lapic{};
  std::memcpy(lapic.regs, s.lapic.data(), kLapicSize);
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_SET_LAPIC, &lapic, "KVM_SET_LAPIC"));
  if (auto set = SetMsrs(s.msrs); !set) return Wrap(fmt::format("vCPU {} MSRs", id_), set.error());

  const accel::VcpuEvents& e = s.events;
  kvm_vcpu_events ev{};
  ev.exception.injected = e.exception_injected, ev.exception.nr = e.exception_nr;
  ev.exception.has_error_code = e.exception_has_error_code;
  ev.exception.pending = e.exception_pending, ev.exception.error_code = e.exception_error_code;
  ev.interrupt.injected = e.interrupt_injected, ev.interrupt.nr = e.interrupt_nr;
  ev.interrupt.soft = e.interrupt_soft, ev.interrupt.shadow = e.interrupt_shadow;
  ev.nmi.injected = e.nmi_injected, ev.nmi.pending = e.nmi_pending, ev.nmi.masked = e.nmi_masked;
  ev.sipi_vector = e.sipi_vector;
  ev.smi.smm = e.smm, ev.smi.pending = e.smm_pending, ev.smi.smm_inside_nmi = e.smm_inside_nmi;
  ev.smi.latched_init = e.smm_latched_init;
  ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR |
             KVM_VCPUEVENT_VALID_SHADOW | KVM_VCPUEVENT_VALID_SMM;
  return Ioctl(fd_.get(), KVM_SET_VCPU_EVENTS, &ev, "KVM_SET_VCPU_EVENTS");
}

Result<accel::VmSavedState> KvmVm::SaveState() {
  accel::VmSavedState s;
  if (split_) {  // the IOAPIC, PICs and PIT are ours; the LAPICs go with each vCPU
    split_->SaveState(s);
    kvm_clock_data clock{};
    VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK"));
    s.clock_ns = clock.clock;
    return s;
  }
  kvm_irqchip chip{};
  chip.chip_id = KVM_IRQCHIP_PIC_MASTER;
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP (PIC master)"));
  s.pic_master = FromKvm(chip.chip.pic);
  chip = {};
  chip.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP (PIC slave)"));
  s.pic_slave = FromKvm(chip.chip.pic);
  chip = {};
  chip.chip_id = KVM_IRQCHIP_IOAPIC;
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_IRQCHIP, &chip, "KVM_GET_IRQCHIP (IOAPIC)"));
  const kvm_ioapic_state& io = chip.chip.ioapic;
  s.ioapic.base_address = io.base_address, s.ioapic.ioregsel = io.ioregsel;
  s.ioapic.id = io.id, s.ioapic.irr = io.irr;
  for (size_t i = 0; i < s.ioapic.redirection.size(); ++i) {
    s.ioapic.redirection[i] = io.redirtbl[i].bits;
  }

  kvm_pit_state2 pit{};
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_PIT2, &pit, "KVM_GET_PIT2"));
  // count_load_time is KVM's ktime, CLOCK_MONOTONIC: the instant of the save on that clock
  // tells a restore (on the software CPU) how far each count had run.
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  s.saved_at_ns =
      static_cast<uint64_t>(now.tv_sec) * 1'000'000'000 + static_cast<uint64_t>(now.tv_nsec);
  s.pit.flags = pit.flags;
  for (size_t i = 0; i < 3; ++i) {
    const kvm_pit_channel_state& k = pit.channels[i];
    s.pit.channels[i] = {k.count,          k.latched_count, k.count_latched, k.status_latched,
                         k.status,         k.read_state,    k.write_state,   k.write_latch,
                         k.rw_mode,        k.mode,          k.bcd,           k.gate,
                         k.count_load_time};
  }
  kvm_clock_data clock{};
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_CLOCK, &clock, "KVM_GET_CLOCK"));
  s.clock_ns = clock.clock;
  return s;
}

Status KvmVm::RestoreState(const accel::VmSavedState& s) {
  if (split_) {
    kvm_clock_data clock{};
    clock.clock = s.clock_ns;
    VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK"));
    return split_->RestoreState(s);
  }
  kvm_pit_state2 pit{};
  pit.flags = s.pit.flags;
  for (size_t i = 0; i < 3; ++i) {
    const accel::PitChannelState& c = s.pit.channels[i];
    kvm_pit_channel_state& k = pit.channels[i];
    k.count = c.count, k.latched_count = c.latched_count, k.count_latched = c.count_latched;
    k.status_latched = c.status_latched, k.status = c.status, k.read_state = c.read_state;
    k.write_state = c.write_state, k.write_latch = c.write_latch, k.rw_mode = c.rw_mode;
    k.mode = c.mode, k.bcd = c.bcd, k.gate = c.gate, k.count_load_time = c.count_load_time;
  }
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_SET_PIT2, &pit, "KVM_SET_PIT2"));
  kvm_clock_data clock{};
  clock.clock = s.clock_ns;  // flags 0: the clock value alone, no realtime adjustment
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_SET_CLOCK, &clock, "KVM_SET_CLOCK"));

  kvm_irqchip chip{};
  chip.chip_id = KVM_IRQCHIP_PIC_MASTER;
  chip.chip.pic = ToKvm(s.pic_master);
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP (PIC master)"));
  chip = {};
  chip.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  chip.chip.pic = ToKvm(s.pic_slave);
  VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP (PIC slave)"));
  chip = {};
  chip.chip_id = KVM_IRQCHIP_IOAPIC;
  kvm_ioapic_state& io = chip.chip.ioapic;
  io.base_address = s.ioapic.base_address, io.ioregsel = s.ioapic.ioregsel;
  io.id = s.ioapic.id, io.irr = s.ioapic.irr;
  for (size_t i = 0; i < s.ioapic.redirection.size(); ++i) {
    io.redirtbl[i].bits = s.ioapic.redirection[i];
  }
  return Ioctl(fd_.get(), KVM_SET_IRQCHIP, &chip, "KVM_SET_IRQCHIP (IOAPIC)");
}

Status KvmVm::StartDirtyLog() {
  for (kvm_userspace_memory_region& slot : slots_) {
    if (slot.flags & KVM_MEM_LOG_DIRTY_PAGES) continue;
    kvm_userspace_memory_region r = slot;
    r.flags |= KVM_MEM_LOG_DIRTY_PAGES;
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r) < 0) {
      return Fail("enabling the dirty log on memory slot {} failed: {}", r.slot,
                  std::strerror(errno));
    }
    slot = r;
  }
  return {};
}

Result<std::vector<std::vector<uint64_t>>> KvmVm::FetchDirtyPages() {
  std::vector<std::vector<uint64_t>> out;
  for (const kvm_userspace_memory_region& slot : slots_) {
    if (!(slot.flags & KVM_MEM_LOG_DIRTY_PAGES)) {
      return Fail("the dirty log is not enabled on memory slot {}", slot.slot);
    }
    const uint64_t pages = slot.memory_size / 4096;
    std::vector<uint64_t> bitmap((pages + 63) / 64);
    kvm_dirty_log log{};
    log.slot = slot.slot;
    log.dirty_bitmap = bitmap.data();
    VIREO_TRY_STATUS(Ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &log, "KVM_GET_DIRTY_LOG"));
    out.push_back(std::move(bitmap));
  }
  return out;
}

}  // namespace vireo::kvm
