// ACPI tables for x86 guests: what WriteAcpiTables puts at kAcpiTables.
//
//   RSDP (rev 2) -> XSDT -> FADT (rev 6, not hardware-reduced) -> DSDT, FACS
//                        -> MADT (LAPICs, IOAPIC, ISA overrides, LAPIC NMI)
//                        -> MCFG (only with `pci`: ECAM for bus 0)
//                        -> HPET (only with `hpet`: the event timer block at kHpetBase)
//
// The FADT describes the fixed PM1 registers that devices/acpi/AcpiPmDevice emulates
// and the reset register that devices/acpi/ResetControlDevice emulates; the DSDT
// carries \_S5 and the legacy ISA devices. Follows ACPI 6.4 (section numbers cited).
#pragma once

#include <cstdint>
#include <vector>

#include "arch/x86/layout.h"
#include "base/result.h"
#include "memory/guest_memory.h"

namespace vireo::x86::acpi {

// A virtio-mmio device as the DSDT describes it (LNRO0005, Linux's virtio-mmio ACPI id).
struct VirtioMmioDevice {
  GuestAddress base;
  uint32_t size;
  uint8_t irq;  // an ISA IRQ (edge, active high)
};

struct AcpiConfig {
  int cpus = 1;              // LAPIC ids 0..cpus-1, processor UIDs 0..cpus-1
  uint8_t ioapic_id = 1;     // use cpus (after the LAPIC ids)
  uint16_t pm_base = 0x600;  // PM1a_EVT_BLK at pm_base (4 bytes), PM1a_CNT_BLK at pm_base+4
  uint8_t sci_irq = 9;       // ISA IRQ, identity-mapped to the same IOAPIC GSI
  uint16_t reset_port = 0xcf9;
  uint8_t reset_value = 0x06;

  // PCI (devices/pci): off by default, which leaves every table as it was. On, the XSDT
  // gains an MCFG (ECAM for segment 0, bus 0) and the DSDT a PCI host bridge \_SB.PCI0
  // (bus 0, ports 0xcf8-0xcff, I/O window 0x0d00-0xffff, the memory BAR window) and a
  // motherboard-resource device reserving the ECAM window, which Linux requires before
  // it uses ECAM. No _PRT: devices interrupt through MSI-X, never INTx.
  bool pci = false;
  std::vector<VirtioMmioDevice> virtio_mmio;  // \_SB.VRnn, one per device
  // An HPET at kHpetBase: the XSDT gains an HPET table and the DSDT \_SB.HPET (PNP0103)
  // reserving its registers, as QEMU's pc machine describes it.
  bool hpet = false;
  GuestAddress pci_ecam_base = kPciEcamBase;  // 1 MiB: bus 0 only
  GuestAddress pci_mmio_base = kPciBarWindowStart;
  uint64_t pci_mmio_size = kPciBarWindowEnd - kPciBarWindowStart;
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

// ECAM covers one bus: 32 devices x 8 functions x 4 KiB (PCI Express Base 3.0 §7.2.2).
inline constexpr uint64_t kEcamBusSize = 1ull << 20;
// The host bridge's I/O window: every port above the legacy ISA range and 0xcf8-0xcff.
inline constexpr uint16_t kPciIoWindowStart = 0x0d00;
inline constexpr uint16_t kPciConfigPorts = 0xcf8;

// Checks the config (CPU count, id clashes, port ranges); errors name the bad field.
Status ValidateAcpiConfig(const AcpiConfig& config);

// Builds every table and writes them into [kAcpiTables, +kAcpiTablesSize). Returns the
// RSDP's address (== kAcpiTables: 16-byte aligned, inside the 0xe0000-0xfffff BIOS
// area the OS scans, §5.2.5.1).
Result<GuestAddress> WriteAcpiTables(const GuestMemory& memory, const AcpiConfig& config);

}  // namespace vireo::x86::acpi
