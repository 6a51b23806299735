// KVM structures with flexible array members, declared correctly for C++.
//
// Debian 12's <linux/kvm.h> (linux-libc-dev 6.1) declares these arrays with
// __DECLARE_FLEX_ARRAY, which in C++ adds an empty struct member: sizeof(kvm_cpuid2)
// becomes 12 instead of 8, and every ioctl number that encodes that size (GET_SUPPORTED_CPUID,
// SET_CPUID2, GET/SET_MSRS, GET_MSR_INDEX_LIST, SET_GSI_ROUTING) is wrong — the kernel answers
// EINVAL. So Vireo encodes these ioctls itself from the kernel ABI's real header sizes, and keeps
// the arrays in buffers of its own.
#pragma once

#include <linux/kvm.h>
#include <sys/ioctl.h>

#include <cstdint>

namespace vireo::kvm_abi {

// The fixed headers as the kernel lays them out (uapi/asm/kvm.h).
struct Cpuid2Header {
  uint32_t nent;
  uint32_t padding;
};
struct MsrsHeader {
  uint32_t nmsrs;
  uint32_t pad;
};
struct MsrListHeader {
  uint32_t nmsrs;
};
struct IrqRoutingHeader {
  uint32_t nr;
  uint32_t flags;
};
static_assert(sizeof(Cpuid2Header) == 8);
static_assert(sizeof(IrqRoutingHeader) == 8);
static_assert(sizeof(kvm_irq_routing_entry) == 48);
static_assert(sizeof(MsrsHeader) == 8);
static_assert(sizeof(kvm_cpuid_entry2) == 40);
static_assert(sizeof(kvm_msr_entry) == 16);

inline constexpr unsigned long kGetMsrIndexList =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x02, sizeof(MsrListHeader));
inline constexpr unsigned long kGetSupportedCpuid =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x05, sizeof(Cpuid2Header));
inline constexpr unsigned long kGetMsrs =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x88, sizeof(MsrsHeader));
inline constexpr unsigned long kSetMsrs = _IOC(_IOC_WRITE, KVMIO, 0x89, sizeof(MsrsHeader));
inline constexpr unsigned long kSetCpuid2 = _IOC(_IOC_WRITE, KVMIO, 0x90, sizeof(Cpuid2Header));
inline constexpr unsigned long kSetGsiRouting =
    _IOC(_IOC_WRITE, KVMIO, 0x6a, sizeof(IrqRoutingHeader));
inline constexpr unsigned long kGetCpuid2 =
    _IOC(_IOC_READ | _IOC_WRITE, KVMIO, 0x91, sizeof(Cpuid2Header));

// struct kvm_xsave ends in a flexible array too; the fixed part is the 4 KiB XSAVE area.
inline constexpr size_t kXsaveSize = 4096;
inline constexpr unsigned long kGetXsave = _IOC(_IOC_READ, KVMIO, 0xa4, kXsaveSize);
inline constexpr unsigned long kSetXsave = _IOC(_IOC_WRITE, KVMIO, 0xa5, kXsaveSize);

// The kernel's limit for CPUID tables (KVM_MAX_CPUID_ENTRIES).
inline constexpr uint32_t kMaxCpuidEntries = 256;

}  // namespace vireo::kvm_abi
