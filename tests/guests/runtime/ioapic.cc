#include "ioapic.h"

#include "acpi.h"
#include "io.h"
#include "serial.h"

namespace rt {

namespace {
constexpr uint8_t kIoapicVer = 0x01;
constexpr uint8_t kIoRedTbl = 0x10;

struct GsiRoute {
  uint32_t gsi;
  bool level;
  bool active_low;
};

// ACPI 6.x 5.2.12.5: MPS INTI flags, polarity bits 0-1 and trigger mode bits 2-3
// (0 = bus default, which for ISA is edge / active high).
GsiRoute IsaRoute(uint8_t irq) {
  const Madt& m = GetMadt();
  for (int i = 0; i < m.override_count; ++i) {
    const auto& o = m.overrides[i];
    if (o.source_irq == irq) {
      return {o.gsi, (o.flags & 0xc) == 0xc, (o.flags & 0x3) == 0x3};
    }
  }
  return {irq, false, false};
}

const Madt::Ioapic* IoapicForGsi(uint32_t gsi) {
  const Madt& m = GetMadt();
  for (int i = 0; i < m.ioapic_count; ++i) {
    const auto& io = m.ioapics[i];
    if (gsi >= io.gsi_base && gsi < io.gsi_base + static_cast<uint32_t>(IoapicPins(io.addr))) {
      return &io;
    }
  }
  return nullptr;
}
}  // namespace

uint32_t IoapicRead(uint64_t base, uint8_t reg) {
  MmioWrite<uint32_t>(base, reg);
  return MmioRead<uint32_t>(base + 0x10);
}

void IoapicWrite(uint64_t base, uint8_t reg, uint32_t v) {
  MmioWrite<uint32_t>(base, reg);
  MmioWrite<uint32_t>(base + 0x10, v);
}

int IoapicPins(uint64_t base) { return ((IoapicRead(base, kIoapicVer) >> 16) & 0xff) + 1; }

void IoapicSetRedirection(uint64_t base, int pin, const Redirection& r) {
  uint32_t lo = r.vector | (r.active_low ? 1u << 13 : 0) | (r.level_triggered ? 1u << 15 : 0) |
                (r.masked ? 1u << 16 : 0);  // fixed delivery, physical destination
  uint8_t reg = static_cast<uint8_t>(kIoRedTbl + 2 * pin);
  IoapicWrite(base, reg, 1u << 16);  // mask while the entry is half written
  IoapicWrite(base, reg + 1, uint32_t{r.dest_apic_id} << 24);
  IoapicWrite(base, reg, lo);
}

void IoapicMask(uint64_t base, int pin) {
  uint8_t reg = static_cast<uint8_t>(kIoRedTbl + 2 * pin);
  IoapicWrite(base, reg, IoapicRead(base, reg) | 1u << 16);
}

int RouteIsaIrq(uint8_t irq, uint8_t vector, uint8_t dest_apic_id) {
  GsiRoute r = IsaRoute(irq);
  const Madt::Ioapic* io = IoapicForGsi(r.gsi);
  if (!io) {
    Printf("ioapic: no IOAPIC for IRQ %u (GSI %u)\n", irq, r.gsi);
    return -1;
  }
  int pin = static_cast<int>(r.gsi - io->gsi_base);
  IoapicSetRedirection(io->addr, pin, {vector, dest_apic_id, r.level, r.active_low, false});
  Printf("ioapic: IRQ %u -> GSI %u (ioapic %u pin %d, %s, %s) -> vector %#x\n", irq, r.gsi, io->id,
         pin, r.level ? "level" : "edge", r.active_low ? "low" : "high", vector);
  return static_cast<int>(r.gsi);
}

void MaskIsaIrq(uint8_t irq) {
  GsiRoute r = IsaRoute(irq);
  if (const Madt::Ioapic* io = IoapicForGsi(r.gsi)) {
    IoapicMask(io->addr, static_cast<int>(r.gsi - io->gsi_base));
  }
}

void DisableLegacyPic() {
  // 8259A ICW1-ICW4: move the vector bases to 0x20 / 0x28 so a spurious IRQ7/IRQ15 cannot look
  // like an exception, then OCW1 masks every line.
  Outb(0x20, 0x11);
  Outb(0xa0, 0x11);
  Outb(0x21, 0x20);
  Outb(0xa1, 0x28);
  Outb(0x21, 0x04);
  Outb(0xa1, 0x02);
  Outb(0x21, 0x01);
  Outb(0xa1, 0x01);
  Outb(0x21, 0xff);
  Outb(0xa1, 0xff);
}

}  // namespace rt
