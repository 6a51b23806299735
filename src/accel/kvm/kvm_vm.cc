#include "accel/kvm/kvm_vm.h"

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "accel/kvm/kvm_system.h"
#include "accel/kvm/kvm_vcpu.h"
#include "arch/x86/layout.h"

namespace vireo::kvm {

Result<std::unique_ptr<KvmVm>> KvmVm::Create(const KvmAccelerator& kvm) {
  UniqueFd fd;
  // KVM_CREATE_VM can fail with EINTR while the kernel is busy; retry a few times.
  for (int attempt = 0; attempt < 5 && !fd; ++attempt) {
    fd.reset(::ioctl(kvm.fd(), KVM_CREATE_VM, 0));
    if (!fd && errno != EINTR) break;
  }
  if (!fd) return Fail("KVM_CREATE_VM failed: {}", std::strerror(errno));

  // Intel VMX needs these pages inside guest-physical space; place them in the MMIO hole.
  if (::ioctl(fd.get(), KVM_SET_TSS_ADDR, x86::kKvmTssAddress) < 0) {
    return Fail("KVM_SET_TSS_ADDR failed: {}", std::strerror(errno));
  }
  uint64_t identity = x86::kKvmIdentityMap;
  if (::ioctl(fd.get(), KVM_SET_IDENTITY_MAP_ADDR, &identity) < 0) {
    return Fail("KVM_SET_IDENTITY_MAP_ADDR failed: {}", std::strerror(errno));
  }
  if (::ioctl(fd.get(), KVM_CREATE_IRQCHIP, 0) < 0) {
    return Fail("KVM_CREATE_IRQCHIP failed: {}", std::strerror(errno));
  }
  kvm_pit_config pit{};
  pit.flags = KVM_PIT_SPEAKER_DUMMY;  // port 0x61 handled in the kernel, no speaker
  if (::ioctl(fd.get(), KVM_CREATE_PIT2, &pit) < 0) {
    return Fail("KVM_CREATE_PIT2 failed: {}", std::strerror(errno));
  }
  return std::unique_ptr<KvmVm>(new KvmVm(kvm, std::move(fd)));
}

Status KvmVm::MapMemory(const GuestMemory& memory) {
  for (const GuestMemory::Region& region : memory.regions()) {
    kvm_userspace_memory_region r{};
    r.slot = next_slot_++;
    r.guest_phys_addr = region.range.base;
    r.memory_size = region.range.size;
    r.userspace_addr = reinterpret_cast<uint64_t>(region.mapping.get());
    if (::ioctl(fd_.get(), KVM_SET_USER_MEMORY_REGION, &r) < 0) {
      return Fail("KVM_SET_USER_MEMORY_REGION for {:#x}+{:#x} failed: {}", region.range.base,
                  region.range.size, std::strerror(errno));
    }
  }
  return {};
}

Result<std::unique_ptr<accel::Vcpu>> KvmVm::CreateVcpu(int id) {
  auto vcpu = VIREO_TRY(KvmVcpu::Create(kvm_, *this, id));
  return std::unique_ptr<accel::Vcpu>(std::move(vcpu));
}

Status KvmVm::SetIrqLine(uint32_t gsi, bool level) {
  kvm_irq_level irq{};
  irq.irq = gsi;
  irq.level = level ? 1 : 0;
  if (::ioctl(fd_.get(), KVM_IRQ_LINE, &irq) < 0) {
    return Fail("KVM_IRQ_LINE gsi {} failed: {}", gsi, std::strerror(errno));
  }
  return {};
}

Result<std::vector<accel::CpuidEntry>> KvmVm::SupportedCpuid() { return kvm_.SupportedCpuid(); }

}  // namespace vireo::kvm
