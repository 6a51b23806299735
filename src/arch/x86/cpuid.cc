#include "arch/x86/cpuid.h"

#include <bit>
#include <cstring>

namespace vireo::x86 {
namespace {

// CPUID bit positions (Intel SDM Vol. 2A, CPUID; AMD APM Vol. 3, E.3).
constexpr uint32_t kLeaf1EcxHypervisor = 1u << 31;
constexpr uint32_t kLeaf1EdxHtt = 1u << 28;
constexpr uint32_t kKvmSignatureLeaf = 0x40000000;
constexpr uint32_t kFlagSignificantIndex = 1;  // KVM_CPUID_FLAG_SIGNIFCANT_INDEX

// Bits needed to number `count` items (the APIC ID shift for a topology level).
uint32_t ShiftFor(int count) {
  return count <= 1 ? 0 : static_cast<uint32_t>(std::bit_width(static_cast<unsigned>(count - 1)));
}

void SetTopologyLeaf(std::vector<accel::CpuidEntry>& out, uint32_t leaf, int cpus,
                     uint32_t apic_id) {
  // Leaf 0xB/0x1F subleaves: 0 = SMT (one thread per core), 1 = core, 2 = invalid.
  const uint32_t core_shift = ShiftFor(cpus);
  out.push_back({leaf, 0, kFlagSignificantIndex, 0, 1, (1u << 8) | 0, apic_id});
  out.push_back({leaf, 1, kFlagSignificantIndex, core_shift, static_cast<uint32_t>(cpus),
                 (2u << 8) | 1, apic_id});
  out.push_back({leaf, 2, kFlagSignificantIndex, 0, 0, 2, apic_id});
}

}  // namespace

std::vector<accel::CpuidEntry> BuildCpuid(std::span<const accel::CpuidEntry> supported,
                                          const CpuTopology& topology, uint32_t apic_id) {
  const int cpus = topology.cpus < 1 ? 1 : topology.cpus;
  std::vector<accel::CpuidEntry> out;
  out.reserve(supported.size() + 8);
  bool has_kvm_leaf = false;
  for (accel::CpuidEntry e : supported) {
    switch (e.function) {
      case 0x1:
        // EBX[31:24] initial APIC ID, EBX[23:16] addressable logical processors.
        e.ebx = (e.ebx & 0x0000ffff) | (apic_id << 24) |
                (static_cast<uint32_t>(cpus > 255 ? 255 : cpus) << 16);
        e.ecx |= kLeaf1EcxHypervisor;
        if (cpus > 1) {
          e.edx |= kLeaf1EdxHtt;
        } else {
          e.edx &= ~kLeaf1EdxHtt;
        }
        break;
      case 0x4:
        // Deterministic cache parameters: EAX[31:26] cores per package - 1; one thread
        // per cache-sharing group below the package level.
        if ((e.eax & 0x1f) != 0) {
          e.eax = (e.eax & 0x03ffffff) | (static_cast<uint32_t>(cpus - 1) << 26);
          uint32_t level = (e.eax >> 5) & 7;
          uint32_t sharing = level >= 3 ? static_cast<uint32_t>(cpus - 1) : 0;
          e.eax = (e.eax & ~(0xfffu << 14)) | (sharing << 14);
        }
        break;
      case 0xb:
      case 0x1f:
        continue;  // rebuilt below from our topology
      case 0x80000008:
        // ECX[7:0] NC: cores - 1; ECX[15:12] ApicIdCoreIdSize.
        e.ecx = (e.ecx & ~0xf0ffu) | static_cast<uint32_t>(cpus - 1) | (ShiftFor(cpus) << 12);
        break;
      case 0x8000001e:
        // Extended APIC ID; core ID; one thread per core; one node.
        e.eax = apic_id;
        e.ebx = apic_id & 0xff;
        e.ecx = 0;
        break;
      case kKvmSignatureLeaf:
        has_kvm_leaf = true;
        break;
      default:
        break;
    }
    out.push_back(e);
  }
  SetTopologyLeaf(out, 0xb, cpus, apic_id);
  if (!has_kvm_leaf) {
    // "KVMKVMKVM\0\0\0" so guests find the paravirtual interface (kvm-clock).
    accel::CpuidEntry kvm{kKvmSignatureLeaf, 0, 0, 0x40000001, 0, 0, 0};
    std::memcpy(&kvm.ebx, "KVMK", 4);
    std::memcpy(&kvm.ecx, "VMKV", 4);
    std::memcpy(&kvm.edx, "M\0\0\0", 4);
    out.push_back(kvm);
  }
  return out;
}

}  // namespace vireo::x86
