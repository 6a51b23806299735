// §5.2.5.3 Root System Description Pointer (RSDP) Structure.
#include "arch/x86/acpi/sdt.h"
#include "arch/x86/acpi/tables.h"
#include "base/bytes.h"

namespace vireo::x86::acpi {
namespace {
namespace field {                 // offsets, §5.2.5.3 "RSDP Structure"
constexpr size_t kSignature = 0;  // "RSD PTR "
constexpr size_t kChecksum = 8;   // over the first 20 bytes (the ACPI 1.0 structure)
constexpr size_t kOemId = 9;
constexpr size_t kRevision = 15;
constexpr size_t kRsdtAddress = 16;
constexpr size_t kLength = 20;
constexpr size_t kXsdtAddress = 24;
constexpr size_t kExtendedChecksum = 32;  // over the whole structure
}  // namespace field
constexpr size_t kAcpi1Size = 20;
constexpr uint8_t kRevision2 = 2;  // ACPI 2.0+: has Length, XsdtAddress, extended checksum

}  // namespace

std::vector<uint8_t> BuildRsdp(GuestAddress xsdt) {
  std::vector<uint8_t> rsdp(kRsdpSize);
  PutText(rsdp, field::kSignature, "RSD PTR ", 8);
  PutText(rsdp, field::kOemId, kOemId, 6);
  rsdp[field::kRevision] = kRevision2;
  // No RSDT: revision-2 OSes use the XSDT, and §5.2.8 makes the XSDT the one to provide.
  StoreLe<uint32_t>(rsdp, field::kRsdtAddress, 0);
  StoreLe<uint32_t>(rsdp, field::kLength, kRsdpSize);
  StoreLe<uint64_t>(rsdp, field::kXsdtAddress, xsdt);
  rsdp[field::kChecksum] = ChecksumByte(std::span(rsdp).first(kAcpi1Size));
  rsdp[field::kExtendedChecksum] = ChecksumByte(rsdp);
  return rsdp;
}

}  // namespace vireo::x86::acpi
