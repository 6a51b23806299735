// §5.2.12 Multiple APIC Description Table (MADT): one enabled Processor Local APIC per
// vCPU, the single IOAPIC, the ISA interrupt overrides a PC with a PIT needs, and
// LINT1 wired to NMI on every processor.
#include <array>

#include "arch/x86/acpi/sdt.h"
#include "arch/x86/acpi/tables.h"
#include "arch/x86/layout.h"
#include "base/bytes.h"

namespace vireo::x86::acpi {
namespace {

// Revision 5 (ACPI 6.3+): the LAPIC flags carry Online Capable, which Vireo leaves
// clear because every CPU is Enabled from boot.
constexpr uint8_t kMadtRevision = 5;
constexpr size_t kLocalApicAddress = 36;  // 4
constexpr size_t kFlags = 40;             // 4
constexpr size_t kFirstEntry = 44;
constexpr uint32_t kPcatCompat = 1 << 0;  // dual 8259s present: the OS must mask them

// Interrupt controller structure types and lengths (§5.2.12, "Interrupt Controller
// Structure Types").
constexpr uint8_t kTypeLocalApic = 0;
constexpr uint8_t kTypeIoApic = 1;
constexpr uint8_t kTypeInterruptSourceOverride = 2;
constexpr uint8_t kTypeLocalApicNmi = 4;
constexpr uint8_t kLocalApicLength = 8;
constexpr uint8_t kIoApicLength = 12;
constexpr uint8_t kInterruptSourceOverrideLength = 10;
constexpr uint8_t kLocalApicNmiLength = 6;

constexpr uint32_t kLocalApicEnabled = 1 << 0;  // §5.2.12.2 Local APIC Flags

// §5.2.12.5 MPS INTI flags: polarity in bits 0-1, trigger mode in bits 2-3.
constexpr uint16_t kActiveHigh = 0b01;
constexpr uint16_t kEdge = 0b01 << 2;
constexpr uint16_t kLevel = 0b11 << 2;
constexpr uint16_t kConformsToBus = 0;

constexpr uint8_t kBusIsa = 0;
constexpr uint8_t kAllProcessors = 0xff;  // §5.2.12.7: UID 0xff means every processor
constexpr uint8_t kLint1 = 1;

struct Override {
  uint8_t source_irq;
  uint32_t gsi;
  uint16_t flags;
};

class EntryWriter {
 public:
  explicit EntryWriter(std::vector<uint8_t>& table) : table_(table) {}

  // Appends one structure: type, length, then the body bytes the caller fills in.
  std::span<uint8_t> Add(uint8_t type, uint8_t length) {
    const size_t at = table_.size();
    table_.resize(at + length);
    table_[at] = type;
    table_[at + 1] = length;
    return std::span(table_).subspan(at, length);
  }

 private:
  std::vector<uint8_t>& table_;
};

}  // namespace

std::vector<uint8_t> BuildMadt(const AcpiConfig& config) {
  std::vector<uint8_t> madt = NewTable("APIC", kMadtRevision, "VIREOAPI", kFirstEntry);
  StoreLe<uint32_t>(madt, kLocalApicAddress, static_cast<uint32_t>(kLapicBase));
  StoreLe<uint32_t>(madt, kFlags, kPcatCompat);
  EntryWriter entries(madt);

  // §5.2.12.2 Processor Local APIC: UID, APIC id, flags. UIDs match the APIC ids.
  for (int cpu = 0; cpu < config.cpus; ++cpu) {
    std::span<uint8_t> e = entries.Add(kTypeLocalApic, kLocalApicLength);
    e[2] = static_cast<uint8_t>(cpu);
    e[3] = static_cast<uint8_t>(cpu);
    StoreLe<uint32_t>(e, 4, kLocalApicEnabled);
  }

  // §5.2.12.3 I/O APIC: id, reserved, address, GSI base. One IOAPIC takes GSIs 0-23.
  {
    std::span<uint8_t> e = entries.Add(kTypeIoApic, kIoApicLength);
    e[2] = config.ioapic_id;
    StoreLe<uint32_t>(e, 4, static_cast<uint32_t>(kIoapicBase));
    StoreLe<uint32_t>(e, 8, 0);
  }

  // §5.2.12.5 Interrupt Source Override: bus, source IRQ, GSI, flags. The PIT's IRQ0 is
  // wired to IOAPIC pin 2 on PCs. The SCI is a level interrupt; without an override the
  // OS would assume active low (§5.2.9 SCI_INT), so state the active-high level line
  // the emulated chipset drives.
  const std::array<Override, 2> overrides = {{
      {0, 2, kActiveHigh | kEdge},
      {config.sci_irq, config.sci_irq, kActiveHigh | kLevel},
  }};
  for (const Override& o : overrides) {
    std::span<uint8_t> e =
        entries.Add(kTypeInterruptSourceOverride, kInterruptSourceOverrideLength);
    e[2] = kBusIsa;
    e[3] = o.source_irq;
    StoreLe<uint32_t>(e, 4, o.gsi);
    StoreLe<uint16_t>(e, 8, o.flags);
  }

  // §5.2.12.7 Local APIC NMI: processor UID, flags, LINT#.
  {
    std::span<uint8_t> e = entries.Add(kTypeLocalApicNmi, kLocalApicNmiLength);
    e[2] = kAllProcessors;
    StoreLe<uint16_t>(e, 3, kConformsToBus);
    e[5] = kLint1;
  }

  FinishTable(madt);
  return madt;
}

}  // namespace vireo::x86::acpi
