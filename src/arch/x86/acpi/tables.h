// One builder per ACPI table. Each returns the finished table (length and checksum
// set) as host bytes; WriteAcpiTables decides where they go and links them.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "arch/x86/acpi/acpi.h"
#include "memory/guest_memory.h"

namespace vireo::x86::acpi {

// §5.2.5.3 Root System Description Pointer, revision 2 (36 bytes, both checksums).
inline constexpr size_t kRsdpSize = 36;
std::vector<uint8_t> BuildRsdp(GuestAddress xsdt);

// §5.2.8 Extended System Description Table: 64-bit pointers to every table but the
// DSDT and FACS, which the FADT points to.
std::vector<uint8_t> BuildXsdt(std::span<const GuestAddress> tables);

// §5.2.10 Firmware ACPI Control Structure (64 bytes, 64-byte aligned, no checksum).
inline constexpr size_t kFacsSize = 64;
inline constexpr uint64_t kFacsAlignment = 64;
std::vector<uint8_t> BuildFacs();

// §5.2.9 Fixed ACPI Description Table, revision 6.
inline constexpr size_t kFadtSize = 276;
std::vector<uint8_t> BuildFadt(const AcpiConfig& config, GuestAddress dsdt, GuestAddress facs);

// §5.2.12 Multiple APIC Description Table.
std::vector<uint8_t> BuildMadt(const AcpiConfig& config);

// §5.2.11.1 Differentiated System Description Table: \_S5 and the ISA devices, and with
// config.pci the PCI host bridge. BuildDsdt() is BuildDsdt(AcpiConfig{}).
std::vector<uint8_t> BuildDsdt();
std::vector<uint8_t> BuildDsdt(const AcpiConfig& config);

// PCI Firmware Specification 3.0 §4.1.2 MCFG: one ECAM allocation (base, segment 0,
// buses start_bus..end_bus). Listed in the XSDT (§5.2.6, signature "MCFG").
inline constexpr size_t kMcfgAllocationOffset = 44;  // header, then 8 reserved bytes
inline constexpr size_t kMcfgAllocationSize = 16;
std::vector<uint8_t> BuildMcfg(GuestAddress ecam_base, uint8_t start_bus, uint8_t end_bus);

// IA-PC HPET Specification 1.0a §3.2.4 HPET description table: the event timer block's
// ID (a copy of the low half of its capabilities register) and base address, HPET number 0.
inline constexpr size_t kHpetTableSize = 56;
std::vector<uint8_t> BuildHpet(GuestAddress base, uint32_t event_timer_block_id);

}  // namespace vireo::x86::acpi
