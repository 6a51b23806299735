// I/O APIC (82093AA datasheet): indirect registers through IOREGSEL (+0x00) / IOWIN (+0x10).
#pragma once

#include <stdint.h>

namespace rt {

inline constexpr uint64_t kIoapicDefaultBase = 0xfec00000;

uint32_t IoapicRead(uint64_t base, uint8_t reg);
void IoapicWrite(uint64_t base, uint8_t reg, uint32_t v);
// Number of redirection entries (IOAPICVER bits 16-23, plus one).
int IoapicPins(uint64_t base);

struct Redirection {
  uint8_t vector;
  uint8_t dest_apic_id;
  bool level_triggered;
  bool active_low;
  bool masked;
};

void IoapicSetRedirection(uint64_t base, int pin, const Redirection& r);
void IoapicMask(uint64_t base, int pin);

// Routes ISA `irq` to `vector` on `dest_apic_id`, applying the MADT interrupt source overrides
// (e.g. IRQ0 -> GSI 2) and picking the IOAPIC that owns the GSI. Prints the route.
// Returns the GSI, or -1 if no IOAPIC owns it.
int RouteIsaIrq(uint8_t irq, uint8_t vector, uint8_t dest_apic_id);
void MaskIsaIrq(uint8_t irq);

// Re-bases and masks the 8259 PICs so only the IOAPIC delivers ISA interrupts.
void DisableLegacyPic();

}  // namespace rt
