// ACPI table parsing (ACPI 6.x chapter 5): RSDP -> XSDT/RSDT -> MADT, FADT, DSDT's \_S5.
#pragma once

#include <stdint.h>

namespace rt {

struct Madt {
  static constexpr int kMaxCpus = 64;
  static constexpr int kMaxIoapics = 4;
  static constexpr int kMaxOverrides = 16;
  struct Cpu {
    uint8_t acpi_id;
    uint8_t apic_id;
  };
  struct Ioapic {
    uint8_t id;
    uint64_t addr;
    uint32_t gsi_base;
  };
  struct Override {
    uint8_t source_irq;
    uint32_t gsi;
    uint16_t flags;
  };
  uint64_t lapic_addr;
  Cpu cpus[kMaxCpus];  // enabled processors only
  int cpu_count;
  Ioapic ioapics[kMaxIoapics];
  int ioapic_count;
  Override overrides[kMaxOverrides];
  int override_count;
};

struct Fadt {
  uint16_t pm1a_evt;  // I/O port of PM1a_STS (PM1a_EN follows at +2); 0 if none
  uint16_t pm1a_cnt;  // I/O port; 0 if none
  uint16_t pm1b_cnt;
  bool reset_supported;  // FADT flags bit 10 RESET_REG_SUP
  uint8_t reset_space;   // GAS address space: 0 memory, 1 I/O
  uint64_t reset_addr;
  uint8_t reset_value;
  uint64_t dsdt;
  bool s5_found;
  uint8_t s5_slp_typ_a;
  uint8_t s5_slp_typ_b;
};

// Parses the tables reachable from the RSDP at `rsdp` (0: scan the BIOS area). Prints a one-line
// summary. Returns false (with a message) if no valid RSDP or tables are found.
bool AcpiInit(uint64_t rsdp);
bool AcpiAvailable();
const Madt& GetMadt();
const Fadt& GetFadt();

// Finds a table by signature through the XSDT (or RSDT); 0 if absent.
uint64_t AcpiFindTable(const char sig[4]);

}  // namespace rt
