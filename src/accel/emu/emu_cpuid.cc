#include "accel/emu/emu_cpuid.h"

#include <cpuid.h>

#include <cstring>

namespace vireo::emu {
namespace {

// Leaf 1 EDX / ECX and leaf 0x80000001 EDX / ECX bits (SDM Vol. 2A "CPUID", AMD APM Vol. 3
// E.3). Each one listed here is emulated; the rest stay clear.
constexpr uint32_t kEdxFpu = 1u << 0;
constexpr uint32_t kEdxPse = 1u << 3;
constexpr uint32_t kEdxTsc = 1u << 4;
constexpr uint32_t kEdxMsr = 1u << 5;
constexpr uint32_t kEdxPae = 1u << 6;
constexpr uint32_t kEdxCx8 = 1u << 8;
constexpr uint32_t kEdxApic = 1u << 9;  // the userspace local APIC (emu_platform.h)
constexpr uint32_t kEdxPge = 1u << 13;
constexpr uint32_t kEdxCmov = 1u << 15;
constexpr uint32_t kEdxPat = 1u << 16;
constexpr uint32_t kEdxClflush = 1u << 19;
constexpr uint32_t kEdxFxsr = 1u << 24;
constexpr uint32_t kEdxSse = 1u << 25;
constexpr uint32_t kEdxSse2 = 1u << 26;
constexpr uint32_t kEcxCx16 = 1u << 13;
constexpr uint32_t kEcxX2Apic = 1u << 21;  // the local APIC's MSR mode (11.12)
constexpr uint32_t kEcxPopcnt = 1u << 23;
constexpr uint32_t kEcxTscDeadline = 1u << 24;  // the local APIC's timer mode 2 (11.5.4.1)
constexpr uint32_t kExtEdxSyscall = 1u << 11;
constexpr uint32_t kExtEdxNx = 1u << 20;
constexpr uint32_t kExtEdxPage1G = 1u << 26;
constexpr uint32_t kExtEdxRdtscp = 1u << 27;
constexpr uint32_t kExtEdxLm = 1u << 29;
constexpr uint32_t kExtEcxLahf = 1u << 0;
constexpr uint32_t kExtEcxAbm = 1u << 5;          // LZCNT
constexpr uint32_t kExtEcxMisalignSse = 1u << 7;  // MXCSR.MM is honoured
constexpr uint32_t kLeaf7EbxSmep = 1u << 7;

uint32_t Chars(const char* four) {
  uint32_t v;
  std::memcpy(&v, four, 4);
  return v;
}

}  // namespace

std::vector<accel::CpuidEntry> SupportedCpuid() {
  // The vendor is the host's: the emulator matches this CPU where the SDM leaves results
  // undefined (docs/emulator.md), so guests see the vendor whose behaviour they get.
  uint32_t a = 0, vendor_b = 0, vendor_c = 0, vendor_d = 0;
  __cpuid(0, a, vendor_b, vendor_c, vendor_d);
  std::vector<accel::CpuidEntry> t;
  t.push_back({0, 0, 0, 7, vendor_b, vendor_c, vendor_d});
  // Family 6 model 0 stepping 0; EBX[15:8] is the CLFLUSH line size in 8-byte units.
  t.push_back({1, 0, 0, 0x00000600, 8u << 8, kEcxCx16 | kEcxX2Apic | kEcxPopcnt | kEcxTscDeadline,
               kEdxFpu | kEdxPse | kEdxTsc | kEdxMsr | kEdxPae | kEdxCx8 | kEdxApic | kEdxPge |
                   kEdxCmov | kEdxPat | kEdxClflush | kEdxFxsr | kEdxSse | kEdxSse2});
  t.push_back({7, 0, 1, 0, kLeaf7EbxSmep, 0, 0});
  // A hypervisor leaf of our own, so guests do not look for KVM's paravirtual interfaces.
  t.push_back({0x40000000, 0, 0, 0x40000000, Chars("Vire"), Chars("oEmu"), Chars("Cpu\0")});
  t.push_back({0x80000000, 0, 0, 0x80000008, vendor_b, vendor_c, vendor_d});
  t.push_back({0x80000001, 0, 0, 0, 0, kExtEcxLahf | kExtEcxAbm | kExtEcxMisalignSse,
               kExtEdxSyscall | kExtEdxNx | kExtEdxPage1G | kExtEdxRdtscp | kExtEdxLm});
  const char brand[49] = "Vireo software x86-64 CPU                       ";
  for (uint32_t i = 0; i < 3; ++i) {
    accel::CpuidEntry e{0x80000002 + i, 0, 0, 0, 0, 0, 0};
    std::memcpy(&e.eax, brand + i * 16, 4);
    std::memcpy(&e.ebx, brand + i * 16 + 4, 4);
    std::memcpy(&e.ecx, brand + i * 16 + 8, 4);
    std::memcpy(&e.edx, brand + i * 16 + 12, 4);
    t.push_back(e);
  }
  // 40 physical and 48 linear address bits.
  t.push_back({0x80000008, 0, 0, (48u << 8) | 40u, 0, 0, 0});
  return t;
}

}  // namespace vireo::emu
