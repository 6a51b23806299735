// ACPI tables for x86 guests: what WriteAcpiTables puts at kAcpiTables.
//
//   RSDP (rev 2) -> XSDT -> FADT (rev 6, not hardware-reduced) -> DSDT, FACS
//                        -> MADT (LAPICs, IOAPIC, ISA overrides, LAPIC NMI)
//
// The FADT describes the fixed PM1 registers that devices/acpi/AcpiPmDevice emulates
// and the reset register that devices/acpi/ResetControlDevice emulates; the DSDT
// carries \_S5 and the legacy ISA devices. Follows ACPI 6.4 (section numbers cited).
#pragma once

#include <cstdint>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace vireo::x86::acpi {

struct AcpiConfig {
  int cpus = 1;              // LAPIC ids 0..cpus-1, processor UIDs 0..cpus-1
  uint8_t ioapic_id = 1;     // use cpus (after the LAPIC ids)
  uint16_t pm_base = 0x600;  // PM1a_EVT_BLK at pm_base (4 bytes), PM1a_CNT_BLK at pm_base+4
  uint8_t sci_irq = 9;       // ISA IRQ, identity-mapped to the same IOAPIC GSI
  uint16_t reset_port = 0xcf9;
  uint8_t reset_value = 0x06;
};

// xAPIC ids are 8 bits and 0xff is the broadcast id; the IOAPIC takes the id after the
// last CPU, so at most 254 CPUs.
inline constexpr int kMaxCpus = 254;

// PM1 register block sizes the FADT advertises (§4.8.3.1, §4.8.3.2).
inline constexpr uint16_t kPm1EventLength = 4;    // PM1a_STS + PM1a_EN, 2 bytes each
inline constexpr uint16_t kPm1ControlLength = 2;  // PM1a_CNT
inline constexpr uint16_t kPmBlockSize = kPm1EventLength + kPm1ControlLength;

// SLP_TYPx value in \_S5 (§7.4.2.6) and what AcpiPmDevice treats as soft-off.
inline constexpr uint8_t kS5SleepType = 5;

// Checks the config (CPU count, id clashes, port ranges); errors name the bad field.
Status ValidateAcpiConfig(const AcpiConfig& config);

// Builds every table and writes them into [kAcpiTables, +kAcpiTablesSize). Returns the
// RSDP's address (== kAcpiTables: 16-byte aligned, inside the 0xe0000-0xfffff BIOS
// area the OS scans, §5.2.5.1).
Result<GuestAddress> WriteAcpiTables(const GuestMemory& memory, const AcpiConfig& config);

}  // namespace vireo::x86::acpi
