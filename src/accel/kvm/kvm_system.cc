#include "accel/kvm/kvm_system.h"

#include <fcntl.h>
#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include "accel/kvm/kvm_abi.h"
#include "accel/kvm/kvm_vm.h"

namespace vireo::kvm {
namespace {

struct RequiredCap {
  int cap;
  const char* name;
};

// Everything the VMM core uses unconditionally.
constexpr RequiredCap kRequiredCaps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI"},
};

std::string OpenErrorHint(int err, const std::string& path) {
  switch (err) {
    case ENOENT:
      return fmt::format(
          "{} does not exist: load the KVM module ('modprobe kvm_intel' or 'modprobe kvm_amd') "
          "and check that virtualization is enabled in the firmware",
          path);
    case EACCES:
    case EPERM:
      return fmt::format(
          "no permission to open {}: add your user to the 'kvm' group "
          "('sudo usermod -aG kvm $USER', then log in again) or run as root",
          path);
    case ENXIO:
    case ENODEV:
      return fmt::format(
          "{} exists but no KVM module is loaded behind it: load kvm_intel or kvm_amd", path);
    default:
      return fmt::format("cannot open {}: {}", path, std::strerror(err));
  }
}

}  // namespace

Result<std::unique_ptr<KvmAccelerator>> KvmAccelerator::Open(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CLOEXEC));
  if (!fd) return Fail("{}", OpenErrorHint(errno, path));

  int version = ::ioctl(fd.get(), KVM_GET_API_VERSION, 0);
  if (version != KVM_API_VERSION) {
    return Fail("{} speaks KVM API version {}, Vireo needs {}: the kernel is too old or too new",
                path, version, KVM_API_VERSION);
  }
  for (const RequiredCap& c : kRequiredCaps) {
    if (::ioctl(fd.get(), KVM_CHECK_EXTENSION, c.cap) <= 0) {
      return Fail("KVM on this host lacks {}, which Vireo needs; use a newer kernel", c.name);
    }
  }
  int mmap_size = ::ioctl(fd.get(), KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size <= 0) return Fail("KVM_GET_VCPU_MMAP_SIZE failed: {}", std::strerror(errno));
  int max_vcpus = ::ioctl(fd.get(), KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
  if (max_vcpus <= 0) max_vcpus = ::ioctl(fd.get(), KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
  if (max_vcpus <= 0) max_vcpus = 4;  // KVM's documented minimum when neither cap exists
  return std::unique_ptr<KvmAccelerator>(new KvmAccelerator(std::move(fd), mmap_size, max_vcpus));
}

Result<std::vector<accel::CpuidEntry>> KvmAccelerator::SupportedCpuid() const {
  std::vector<uint8_t> buffer(sizeof(kvm_abi::Cpuid2Header) +
                              kvm_abi::kMaxCpuidEntries * sizeof(kvm_cpuid_entry2));
  auto* header = reinterpret_cast<kvm_abi::Cpuid2Header*>(buffer.data());
  header->nent = kvm_abi::kMaxCpuidEntries;
  if (::ioctl(fd_.get(), kvm_abi::kGetSupportedCpuid, buffer.data()) < 0) {
    return Fail("KVM_GET_SUPPORTED_CPUID failed: {}", std::strerror(errno));
  }
  std::vector<accel::CpuidEntry> entries;
  entries.reserve(header->nent);
  const auto* raw =
      reinterpret_cast<const kvm_cpuid_entry2*>(buffer.data() + sizeof(kvm_abi::Cpuid2Header));
  for (uint32_t i = 0; i < header->nent; ++i) {
    entries.push_back({raw[i].function, raw[i].index, raw[i].flags, raw[i].eax, raw[i].ebx,
                       raw[i].ecx, raw[i].edx});
  }
  // KVM leaves the TSC-deadline timer out of KVM_GET_SUPPORTED_CPUID although its in-kernel
  // LAPIC (ours in both irqchip modes) emulates it: offered when the capability says so, as
  // QEMU does (CPUID.1:ECX bit 24, SDM Vol. 3 11.5.4.1).
  if (::ioctl(fd_.get(), KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0) {
    for (accel::CpuidEntry& e : entries) {
      if (e.function == 1) e.ecx |= 1u << 24;
    }
  }
  return entries;
}

Result<std::unique_ptr<accel::Vm>> KvmAccelerator::CreateVm(int vcpu_count) {
  if (vcpu_count < 1 || vcpu_count > max_vcpus_) {
    return Fail("KVM on this host supports 1 to {} vCPUs, {} were asked for", max_vcpus_,
                vcpu_count);
  }
  auto vm = VIREO_TRY(KvmVm::Create(*this, vcpu_count, split_irqchip_));
  return std::unique_ptr<accel::Vm>(std::move(vm));
}

Status KvmAccelerator::EnableSplitIrqchip() {
  // The userspace IOAPIC sends its messages with KVM_SIGNAL_MSI (required above).
  if (::ioctl(fd_.get(), KVM_CHECK_EXTENSION, KVM_CAP_SPLIT_IRQCHIP) <= 0) {
    return Fail(
        "--irqchip split: KVM on this host lacks KVM_CAP_SPLIT_IRQCHIP (Linux 4.5+); use "
        "--irqchip kernel");
  }
  split_irqchip_ = true;
  return {};
}

bool KvmAccelerator::HostHasHardwareAssist() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    return line.find(" vmx") != std::string::npos || line.find(" svm") != std::string::npos;
  }
  return false;
}

}  // namespace vireo::kvm
