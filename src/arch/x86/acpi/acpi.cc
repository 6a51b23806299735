#include "arch/x86/acpi/acpi.h"

#include <vector>

#include "arch/x86/acpi/sdt.h"
#include "arch/x86/acpi/tables.h"
#include "arch/x86/layout.h"
#include "base/bytes.h"

namespace vireo::x86::acpi {
namespace {

// §5.2.5.1: the OS scans 16-byte boundaries of 0xe0000-0xfffff for the RSDP.
constexpr uint64_t kRsdpAlignment = 16;
constexpr uint64_t kBiosAreaEnd = 0x100000;
constexpr uint64_t kTableAlignment = 16;
// What the HPET's capabilities register reads in its low half (devices/irqchip/hpet.h):
// vendor 0x8086, legacy replacement capable, 64-bit counter, 3 timers, revision 1.
constexpr uint32_t kHpetEventTimerBlockId = 0x8086a201;

constexpr uint64_t AlignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) & ~(alignment - 1);
}

static_assert(kAcpiTables % kRsdpAlignment == 0);
static_assert(kAcpiTables + kRsdpSize <= kBiosAreaEnd);

// Hands out addresses inside the ACPI window; fails instead of running past its end.
class Placer {
 public:
  Result<GuestAddress> Place(uint64_t size, uint64_t alignment, std::string_view what) {
    const uint64_t at = AlignUp(next_, alignment);
    if (!RangeFits(at - kAcpiTables, size, kAcpiTablesSize)) {
      return Fail("ACPI {} ({} bytes) does not fit in the {:#x}-byte ACPI window at {:#x}", what,
                  size, kAcpiTablesSize, kAcpiTables);
    }
    next_ = at + size;
    return at;
  }

 private:
  GuestAddress next_ = kAcpiTables;
};

}  // namespace

Status ValidateAcpiConfig(const AcpiConfig& config) {
  if (config.cpus < 1 || config.cpus > kMaxCpus) {
    return Fail("ACPI: {} CPUs requested; the xAPIC MADT supports 1 to {}", config.cpus, kMaxCpus);
  }
  if (config.ioapic_id < config.cpus || config.ioapic_id == 0xff) {
    return Fail("ACPI: IOAPIC id {} clashes with the LAPIC ids 0-{} or the broadcast id; use {}",
                config.ioapic_id, config.cpus - 1, config.cpus);
  }
  if (config.sci_irq >= 16) {
    return Fail("ACPI: SCI IRQ {} is not an ISA IRQ (0-15)", config.sci_irq);
  }
  if (config.pm_base == 0 || config.pm_base > 0x10000 - kPmBlockSize) {
    return Fail("ACPI: PM base port {:#x} leaves no room for the {}-byte PM1 block", config.pm_base,
                kPmBlockSize);
  }
  if (config.reset_port == 0) return Fail("ACPI: reset port 0 is not a valid reset register");
  if (config.pci) {
    constexpr uint64_t k4GiB = 1ull << 32;
    if (config.pci_ecam_base % kEcamBusSize != 0 ||
        !RangeFits(config.pci_ecam_base, kEcamBusSize, k4GiB)) {
      return Fail("ACPI: PCI ECAM base {:#x} must be 1 MiB-aligned and below 4 GiB",
                  config.pci_ecam_base);
    }
    if (config.pci_mmio_size == 0 ||
        !RangeFits(config.pci_mmio_base, config.pci_mmio_size, k4GiB)) {
      return Fail("ACPI: PCI memory window {:#x}+{:#x} must be non-empty and below 4 GiB",
                  config.pci_mmio_base, config.pci_mmio_size);
    }
    if (config.pci_ecam_base < config.pci_mmio_base + config.pci_mmio_size &&
        config.pci_mmio_base < config.pci_ecam_base + kEcamBusSize) {
      return Fail("ACPI: PCI ECAM at {:#x} overlaps the memory window {:#x}+{:#x}",
                  config.pci_ecam_base, config.pci_mmio_base, config.pci_mmio_size);
    }
  }
  return {};
}

Result<GuestAddress> WriteAcpiTables(const GuestMemory& memory, const AcpiConfig& config) {
  VIREO_TRY_STATUS(ValidateAcpiConfig(config));

  // Build the tables whose sizes are known up front, place everything, then build the
  // tables that hold addresses. RSDP first, at the window's start, so the legacy scan
  // finds it; FACS needs 64-byte alignment (§5.2.10).
  const std::vector<uint8_t> dsdt = BuildDsdt(config);
  const std::vector<uint8_t> madt = BuildMadt(config);
  const std::vector<uint8_t> facs = BuildFacs();
  const std::vector<uint8_t> mcfg =
      config.pci ? BuildMcfg(config.pci_ecam_base, 0, 0) : std::vector<uint8_t>{};
  const std::vector<uint8_t> hpet =
      config.hpet ? BuildHpet(kHpetBase, kHpetEventTimerBlockId) : std::vector<uint8_t>{};
  // FADT, MADT, then MCFG with PCI and HPET with the HPET.
  const size_t xsdt_entries = 2 + (config.pci ? 1 : 0) + (config.hpet ? 1 : 0);
  const size_t xsdt_size = kHeaderSize + 8 * xsdt_entries;

  Placer placer;
  const GuestAddress rsdp_at = VIREO_TRY(placer.Place(kRsdpSize, kRsdpAlignment, "RSDP"));
  const GuestAddress facs_at = VIREO_TRY(placer.Place(facs.size(), kFacsAlignment, "FACS"));
  const GuestAddress xsdt_at = VIREO_TRY(placer.Place(xsdt_size, kTableAlignment, "XSDT"));
  const GuestAddress fadt_at = VIREO_TRY(placer.Place(kFadtSize, kTableAlignment, "FADT"));
  const GuestAddress madt_at = VIREO_TRY(placer.Place(madt.size(), kTableAlignment, "MADT"));
  const GuestAddress dsdt_at = VIREO_TRY(placer.Place(dsdt.size(), kTableAlignment, "DSDT"));
  GuestAddress mcfg_at = 0;
  if (config.pci) mcfg_at = VIREO_TRY(placer.Place(mcfg.size(), kTableAlignment, "MCFG"));
  GuestAddress hpet_at = 0;
  if (config.hpet) hpet_at = VIREO_TRY(placer.Place(hpet.size(), kTableAlignment, "HPET"));

  const std::vector<uint8_t> fadt = BuildFadt(config, dsdt_at, facs_at);
  std::vector<GuestAddress> xsdt_table_list = {fadt_at, madt_at};
  if (config.pci) xsdt_table_list.push_back(mcfg_at);
  if (config.hpet) xsdt_table_list.push_back(hpet_at);
  const std::vector<uint8_t> xsdt = BuildXsdt(xsdt_table_list);
  const std::vector<uint8_t> rsdp = BuildRsdp(xsdt_at);

  struct Placed {
    GuestAddress at;
    const std::vector<uint8_t>& bytes;
    std::string_view what;
  };
  const Placed placed[] = {
      {rsdp_at, rsdp, "ACPI RSDP"}, {facs_at, facs, "ACPI FACS"}, {xsdt_at, xsdt, "ACPI XSDT"},
      {fadt_at, fadt, "ACPI FADT"}, {madt_at, madt, "ACPI MADT"}, {dsdt_at, dsdt, "ACPI DSDT"},
      {mcfg_at, mcfg, "ACPI MCFG"}, {hpet_at, hpet, "ACPI HPET"},
  };
  for (const Placed& p : placed) {
    if (p.bytes.empty()) continue;  // MCFG without PCI, HPET without the HPET
    VIREO_TRY_STATUS(memory.WriteOrFail(p.at, p.bytes, p.what));
  }
  return rsdp_at;
}

}  // namespace vireo::x86::acpi
