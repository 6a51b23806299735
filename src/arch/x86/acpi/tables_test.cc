// Reads the tables back out of guest memory the way an OS does — RSDP, then pointers —
// and checks them against offsets typed in from the ACPI 6.4 tables, not against the
// builders' own constants.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "arch/x86/acpi/acpi.h"
#include "arch/x86/acpi/tables.h"
#include "arch/x86/layout.h"
#include "base/bytes.h"

namespace vireo::x86::acpi {
namespace {

GuestMemory LowMemory() {
  const RamRange ranges[] = {{0, 1 << 20}};
  auto memory = GuestMemory::Create(ranges, {});
  EXPECT_TRUE(memory) << memory.error().message;
  return std::move(*memory);
}

std::vector<uint8_t> ReadBytes(const GuestMemory& memory, GuestAddress at, size_t len) {
  std::vector<uint8_t> out(len);
  EXPECT_TRUE(memory.Read(at, out)) << std::hex << at << "+" << len;
  return out;
}

// A table whose header says it is `length` bytes; checks it lies inside the ACPI window.
std::vector<uint8_t> ReadTable(const GuestMemory& memory, GuestAddress at) {
  EXPECT_GE(at, kAcpiTables);
  const auto length = memory.ReadObj<uint32_t>(at + 4);
  if (!length || *length < 36 || at + *length > kAcpiTables + kAcpiTablesSize) {
    ADD_FAILURE() << "table at " << std::hex << at << " has a bad length";
    return {};
  }
  return ReadBytes(memory, at, *length);
}

std::string Signature(std::span<const uint8_t> table) {
  return table.size() < 4 ? "" : std::string(table.begin(), table.begin() + 4);
}

uint8_t Sum(std::span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t b : bytes) sum = static_cast<uint8_t>(sum + b);
  return sum;
}

struct Tables {
  GuestAddress rsdp_at = 0;
  std::vector<uint8_t> rsdp, xsdt, fadt, facs, madt, dsdt;
};

// Follows RSDP -> XSDT -> FADT -> DSDT/FACS and XSDT -> MADT.
Tables Walk(const GuestMemory& memory, GuestAddress rsdp_at) {
  Tables t;
  t.rsdp_at = rsdp_at;
  t.rsdp = ReadBytes(memory, rsdp_at, 36);
  t.xsdt = ReadTable(memory, LoadLe<uint64_t>(t.rsdp, 24));
  for (size_t off = 36; off + 8 <= t.xsdt.size(); off += 8) {
    std::vector<uint8_t> table = ReadTable(memory, LoadLe<uint64_t>(t.xsdt, off));
    if (Signature(table) == "FACP") t.fadt = std::move(table);
    if (Signature(table) == "APIC") t.madt = std::move(table);
  }
  if (t.fadt.size() >= 148) {
    t.dsdt = ReadTable(memory, LoadLe<uint64_t>(t.fadt, 140));
    t.facs = ReadBytes(memory, LoadLe<uint32_t>(t.fadt, 36), 64);
  }
  return t;
}

Tables WriteAndWalk(const GuestMemory& memory, const AcpiConfig& config) {
  auto rsdp = WriteAcpiTables(memory, config);
  EXPECT_TRUE(rsdp) << rsdp.error().message;
  return rsdp ? Walk(memory, *rsdp) : Tables{};
}

TEST(AcpiTables, RsdpSitsWhereTheLegacyScanLooks) {
  GuestMemory memory = LowMemory();
  auto rsdp = WriteAcpiTables(memory, {});
  ASSERT_TRUE(rsdp) << rsdp.error().message;
  EXPECT_EQ(*rsdp, kAcpiTables);
  EXPECT_EQ(*rsdp % 16, 0u);
  EXPECT_GE(*rsdp, 0xe0000u);
  EXPECT_LE(*rsdp + 36, 0x100000u);
  const std::vector<uint8_t> bytes = ReadBytes(memory, *rsdp, 36);
  EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "RSD PTR ");
  EXPECT_EQ(bytes[15], 2);                      // revision
  EXPECT_EQ(LoadLe<uint32_t>(bytes, 20), 36u);  // length
}

TEST(AcpiTables, EveryPointerResolvesToTheRightTable) {
  GuestMemory memory = LowMemory();
  const Tables t = WriteAndWalk(memory, {});
  EXPECT_EQ(Signature(t.xsdt), "XSDT");
  EXPECT_EQ(t.xsdt.size(), 36u + 2 * 8);  // FADT and MADT only
  EXPECT_EQ(Signature(t.fadt), "FACP");
  EXPECT_EQ(Signature(t.madt), "APIC");
  EXPECT_EQ(Signature(t.dsdt), "DSDT");
  EXPECT_EQ(Signature(t.facs), "FACS");
  ASSERT_GE(t.fadt.size(), 148u);
  EXPECT_EQ(LoadLe<uint32_t>(t.fadt, 40), LoadLe<uint64_t>(t.fadt, 140));  // DSDT == X_DSDT
  EXPECT_EQ(LoadLe<uint32_t>(t.fadt, 36) % 64, 0u);                        // FACS alignment
  EXPECT_EQ(LoadLe<uint64_t>(t.fadt, 132), 0u);  // X_FIRMWARE_CTRL: exclusive with FIRMWARE_CTRL
}

TEST(AcpiTables, EveryChecksumSumsToZero) {
  GuestMemory memory = LowMemory();
  const Tables t = WriteAndWalk(memory, {});
  ASSERT_EQ(t.rsdp.size(), 36u);
  EXPECT_EQ(Sum(std::span(t.rsdp).first(20)), 0) << "RSDP checksum";
  EXPECT_EQ(Sum(t.rsdp), 0) << "RSDP extended checksum";
  for (const auto* table : {&t.xsdt, &t.fadt, &t.madt, &t.dsdt}) {
    ASSERT_FALSE(table->empty());
    EXPECT_EQ(Sum(*table), 0) << Signature(*table);
  }
  EXPECT_EQ(LoadLe<uint32_t>(t.facs, 4), 64u);  // FACS has a length but no checksum
}

TEST(AcpiTables, FadtFieldsAtSpecOffsets) {
  GuestMemory memory = LowMemory();
  const Tables t = WriteAndWalk(memory, {});
  const std::vector<uint8_t>& f = t.fadt;
  ASSERT_EQ(f.size(), 276u);                   // revision 6 length
  EXPECT_EQ(f[8], 6);                          // Revision
  EXPECT_EQ(f[131] & 0x0f, 4);                 // FADT Minor Version
  EXPECT_EQ(LoadLe<uint16_t>(f, 46), 9);       // SCI_INT
  EXPECT_EQ(LoadLe<uint32_t>(f, 48), 0u);      // SMI_CMD: ACPI always enabled
  EXPECT_EQ(LoadLe<uint32_t>(f, 56), 0x600u);  // PM1a_EVT_BLK
  EXPECT_EQ(LoadLe<uint32_t>(f, 60), 0u);      // PM1b_EVT_BLK
  EXPECT_EQ(LoadLe<uint32_t>(f, 64), 0x604u);  // PM1a_CNT_BLK
  EXPECT_EQ(LoadLe<uint32_t>(f, 76), 0u);      // PM_TMR_BLK: none
  EXPECT_EQ(LoadLe<uint32_t>(f, 80), 0u);      // GPE0_BLK: none
  EXPECT_EQ(f[88], 4);                         // PM1_EVT_LEN
  EXPECT_EQ(f[89], 2);                         // PM1_CNT_LEN
  EXPECT_EQ(f[91], 0);                         // PM_TMR_LEN
  EXPECT_EQ(LoadLe<uint16_t>(f, 109), 0x3);    // IAPC_BOOT_ARCH: LEGACY_DEVICES | 8042

  const uint32_t flags = LoadLe<uint32_t>(f, 112);
  EXPECT_TRUE(flags & (1u << 0)) << "WBINVD";
  EXPECT_TRUE(flags & (1u << 4)) << "PWR_BUTTON (control-method / no fixed button)";
  EXPECT_TRUE(flags & (1u << 10)) << "RESET_REG_SUP";
  EXPECT_FALSE(flags & (1u << 20)) << "HW_REDUCED_ACPI must be clear";

  // RESET_REG GAS at 116: system I/O, 8 bits, offset 0, byte access, port 0xcf9.
  EXPECT_EQ(f[116], 1);
  EXPECT_EQ(f[117], 8);
  EXPECT_EQ(f[118], 0);
  EXPECT_EQ(f[119], 1);
  EXPECT_EQ(LoadLe<uint64_t>(f, 120), 0xcf9u);
  EXPECT_EQ(f[128], 0x06);  // RESET_VALUE

  // X_PM1a_EVT_BLK at 148 and X_PM1a_CNT_BLK at 172: system I/O, 32 and 16 bits.
  EXPECT_EQ(f[148], 1);
  EXPECT_EQ(f[149], 32);
  EXPECT_EQ(LoadLe<uint64_t>(f, 152), 0x600u);
  EXPECT_EQ(f[172], 1);
  EXPECT_EQ(f[173], 16);
  EXPECT_EQ(LoadLe<uint64_t>(f, 176), 0x604u);
  EXPECT_EQ(LoadLe<uint64_t>(f, 208 + 4), 0u);  // X_PM_TMR_BLK: none
}

TEST(AcpiTables, FadtFollowsTheConfig) {
  GuestMemory memory = LowMemory();
  AcpiConfig config;
  config.pm_base = 0xb000;
  config.sci_irq = 10;
  config.reset_port = 0x92;
  config.reset_value = 0x01;
  const Tables t = WriteAndWalk(memory, config);
  ASSERT_EQ(t.fadt.size(), 276u);
  EXPECT_EQ(LoadLe<uint16_t>(t.fadt, 46), 10);
  EXPECT_EQ(LoadLe<uint32_t>(t.fadt, 56), 0xb000u);
  EXPECT_EQ(LoadLe<uint32_t>(t.fadt, 64), 0xb004u);
  EXPECT_EQ(LoadLe<uint64_t>(t.fadt, 152), 0xb000u);
  EXPECT_EQ(LoadLe<uint64_t>(t.fadt, 176), 0xb004u);
  EXPECT_EQ(LoadLe<uint64_t>(t.fadt, 120), 0x92u);
  EXPECT_EQ(t.fadt[128], 0x01);
}

struct MadtEntry {
  uint8_t type;
  std::vector<uint8_t> bytes;
};

std::vector<MadtEntry> MadtEntries(const std::vector<uint8_t>& madt) {
  std::vector<MadtEntry> entries;
  size_t off = 44;
  while (off + 2 <= madt.size()) {
    const uint8_t length = madt[off + 1];
    if (length < 2 || off + length > madt.size()) {
      ADD_FAILURE() << "bad MADT entry length " << int{length} << " at " << off;
      break;
    }
    entries.push_back({madt[off], {madt.begin() + off, madt.begin() + off + length}});
    off += length;
  }
  EXPECT_EQ(off, madt.size()) << "entries must tile the table exactly";
  return entries;
}

class MadtTest : public testing::TestWithParam<int> {};

TEST_P(MadtTest, OneEnabledLocalApicPerCpu) {
  const int cpus = GetParam();
  GuestMemory memory = LowMemory();
  AcpiConfig config;
  config.cpus = cpus;
  config.ioapic_id = static_cast<uint8_t>(cpus);
  const Tables t = WriteAndWalk(memory, config);
  ASSERT_GE(t.madt.size(), 44u);
  EXPECT_EQ(LoadLe<uint32_t>(t.madt, 36), 0xfee00000u);  // local APIC address
  EXPECT_EQ(LoadLe<uint32_t>(t.madt, 40), 1u);           // PCAT_COMPAT

  int lapics = 0, ioapics = 0, nmis = 0;
  std::vector<std::pair<int, int>> overrides;  // source IRQ -> GSI
  for (const MadtEntry& e : MadtEntries(t.madt)) {
    switch (e.type) {
      case 0:  // Processor Local APIC: UID, APIC id, flags
        ASSERT_EQ(e.bytes.size(), 8u);
        EXPECT_EQ(e.bytes[2], lapics);
        EXPECT_EQ(e.bytes[3], lapics);
        EXPECT_EQ(LoadLe<uint32_t>(e.bytes, 4) & 1, 1u) << "enabled";
        ++lapics;
        break;
      case 1:  // I/O APIC
        ASSERT_EQ(e.bytes.size(), 12u);
        EXPECT_EQ(e.bytes[2], cpus);
        EXPECT_EQ(LoadLe<uint32_t>(e.bytes, 4), 0xfec00000u);
        EXPECT_EQ(LoadLe<uint32_t>(e.bytes, 8), 0u);
        ++ioapics;
        break;
      case 2: {  // Interrupt Source Override
        ASSERT_EQ(e.bytes.size(), 10u);
        EXPECT_EQ(e.bytes[2], 0) << "ISA bus";
        const uint16_t flags = LoadLe<uint16_t>(e.bytes, 8);
        if (e.bytes[3] == 0) {
          EXPECT_EQ(flags, 0x5) << "IRQ0: edge, active high";
        }
        if (e.bytes[3] == 9) {
          EXPECT_EQ(flags, 0xd) << "SCI: level, active high";
        }
        overrides.emplace_back(e.bytes[3], LoadLe<uint32_t>(e.bytes, 4));
        break;
      }
      case 4:  // Local APIC NMI: all processors, LINT1
        ASSERT_EQ(e.bytes.size(), 6u);
        EXPECT_EQ(e.bytes[2], 0xff);
        EXPECT_EQ(e.bytes[5], 1);
        ++nmis;
        break;
      default:
        ADD_FAILURE() << "unexpected MADT entry type " << int{e.type};
    }
  }
  EXPECT_EQ(lapics, cpus);
  EXPECT_EQ(ioapics, 1);
  EXPECT_EQ(nmis, 1);
  EXPECT_EQ(overrides, (std::vector<std::pair<int, int>>{{0, 2}, {9, 9}}));
}

INSTANTIATE_TEST_SUITE_P(Cpus, MadtTest, testing::Values(1, 2, 64, kMaxCpus));

TEST(AcpiTables, DsdtDeclaresS5WithTheSleepTypeThePmDeviceWants) {
  GuestMemory memory = LowMemory();
  const Tables t = WriteAndWalk(memory, {});
  ASSERT_GT(t.dsdt.size(), 36u);
  EXPECT_EQ(t.dsdt[8], 2) << "revision 2: 64-bit integers";
  // NameOp "_S5_" PackageOp PkgLength NumElements(4) BytePrefix 5 BytePrefix 5 Zero Zero
  const uint8_t s5[] = {0x08, '_',  'S',          '5',  '_',          0x12, 0x08,
                        0x04, 0x0a, kS5SleepType, 0x0a, kS5SleepType, 0x00, 0x00};
  const auto found = std::search(t.dsdt.begin(), t.dsdt.end(), std::begin(s5), std::end(s5));
  EXPECT_NE(found, t.dsdt.end());
}

TEST(AcpiTables, RejectsBadConfigs) {
  GuestMemory memory = LowMemory();
  auto expect_error = [&](const AcpiConfig& config, std::string_view words) {
    auto result = WriteAcpiTables(memory, config);
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find(words), std::string::npos) << result.error().message;
  };
  AcpiConfig config;
  config.cpus = 0;
  expect_error(config, "CPUs");
  config.cpus = kMaxCpus + 1;
  config.ioapic_id = 255;
  expect_error(config, "CPUs");
  config = {};
  config.cpus = 4;
  config.ioapic_id = 2;
  expect_error(config, "IOAPIC id 2");
  config = {};
  config.sci_irq = 16;
  expect_error(config, "SCI IRQ 16");
  config = {};
  config.pm_base = 0xfffc;
  expect_error(config, "PM base");
}

// With PCI on: the XSDT lists an MCFG (PCI Firmware Spec 3.0 §4.1.2: 8 reserved bytes
// after the header, then 16-byte allocations: base, segment, start bus, end bus).
TEST(AcpiTables, PciAddsAnMcfgForBusZero) {
  GuestMemory memory = LowMemory();
  AcpiConfig config;
  config.pci = true;
  const Tables t = WriteAndWalk(memory, config);
  ASSERT_EQ(t.xsdt.size(), 36u + 3 * 8);
  EXPECT_EQ(Signature(t.fadt), "FACP");
  EXPECT_EQ(Signature(t.madt), "APIC");
  const std::vector<uint8_t> mcfg = ReadTable(memory, LoadLe<uint64_t>(t.xsdt, 36 + 2 * 8));
  ASSERT_EQ(Signature(mcfg), "MCFG");
  ASSERT_EQ(mcfg.size(), 60u);
  EXPECT_EQ(mcfg[8], 1) << "revision";
  EXPECT_EQ(Sum(mcfg), 0);
  EXPECT_EQ(LoadLe<uint64_t>(mcfg, 36), 0u) << "reserved";
  EXPECT_EQ(LoadLe<uint64_t>(mcfg, 44), 0xe0000000u);  // == x86::kPciEcamBase
  EXPECT_EQ(LoadLe<uint16_t>(mcfg, 52), 0) << "segment group";
  EXPECT_EQ(mcfg[54], 0) << "start bus";
  EXPECT_EQ(mcfg[55], 0) << "end bus";
  EXPECT_EQ(LoadLe<uint32_t>(mcfg, 56), 0u) << "reserved";

  // The DSDT names the host bridge and the ECAM reservation; without PCI it does not.
  auto has = [](const std::vector<uint8_t>& table, std::string_view text) {
    return std::search(table.begin(), table.end(), text.begin(), text.end()) != table.end();
  };
  EXPECT_TRUE(has(t.dsdt, "PCI0"));
  EXPECT_TRUE(has(t.dsdt, "MRES"));
  EXPECT_EQ(Sum(t.dsdt), 0);
  GuestMemory plain_memory = LowMemory();
  const Tables plain = WriteAndWalk(plain_memory, {});
  EXPECT_FALSE(has(plain.dsdt, "PCI0"));
  EXPECT_FALSE(has(plain.dsdt, "MRES"));
  EXPECT_EQ(plain.dsdt, BuildDsdt()) << "the default DSDT is unchanged";
}

TEST(AcpiTables, RejectsBadPciConfigs) {
  GuestMemory memory = LowMemory();
  auto expect_error = [&](const AcpiConfig& config, std::string_view words) {
    auto result = WriteAcpiTables(memory, config);
    ASSERT_FALSE(result);
    EXPECT_NE(result.error().message.find(words), std::string::npos) << result.error().message;
  };
  AcpiConfig config;
  config.pci = true;
  config.pci_ecam_base = 0xe0080000;
  expect_error(config, "ECAM base");
  config.pci_ecam_base = 0x100000000;
  expect_error(config, "ECAM base");
  config = {};
  config.pci = true;
  config.pci_mmio_base = 0xf0000000;
  config.pci_mmio_size = 0x20000000;
  expect_error(config, "memory window");
  config.pci_mmio_base = 0xc0000000;
  config.pci_mmio_size = 0x20100000;
  expect_error(config, "overlaps");
  config.pci = false;  // the PCI fields are not looked at while PCI is off
  EXPECT_TRUE(WriteAcpiTables(memory, config));
}

TEST(AcpiTables, FailsCleanlyWhenGuestMemoryLacksTheWindow) {
  const RamRange ranges[] = {{0, 0x80000}};  // 512 KiB: ends below 0xe0000
  auto memory = GuestMemory::Create(ranges, {});
  ASSERT_TRUE(memory) << memory.error().message;
  auto result = WriteAcpiTables(*memory, {});
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("ACPI"), std::string::npos) << result.error().message;
}

// With the HPET on: the XSDT lists an HPET table (IA-PC HPET 1.0a §3.2.4) naming the
// block at 0xfed00000, and the DSDT a PNP0103 device; off (the default) neither exists.
TEST(AcpiTables, HpetAddsItsTableAndDevice) {
  auto has = [](const std::vector<uint8_t>& table, std::string_view text) {
    return std::search(table.begin(), table.end(), text.begin(), text.end()) != table.end();
  };
  GuestMemory memory = LowMemory();
  AcpiConfig config;
  config.pci = true;
  config.hpet = true;
  const Tables t = WriteAndWalk(memory, config);
  ASSERT_EQ(t.xsdt.size(), 36u + 4 * 8);
  const std::vector<uint8_t> hpet = ReadTable(memory, LoadLe<uint64_t>(t.xsdt, 36 + 3 * 8));
  ASSERT_EQ(Signature(hpet), "HPET");
  ASSERT_EQ(hpet.size(), 56u);
  EXPECT_EQ(hpet[8], 1) << "revision";
  EXPECT_EQ(Sum(hpet), 0);
  EXPECT_EQ(LoadLe<uint32_t>(hpet, 36), 0x8086a201u) << "event timer block id";
  EXPECT_EQ(hpet[40], 0) << "system memory";
  EXPECT_EQ(LoadLe<uint64_t>(hpet, 44), 0xfed00000u) << "base address";
  EXPECT_EQ(hpet[52], 0) << "HPET number";
  EXPECT_TRUE(has(t.dsdt, "HPET"));

  GuestMemory plain_memory = LowMemory();
  const Tables plain = WriteAndWalk(plain_memory, AcpiConfig{});
  EXPECT_EQ(plain.xsdt.size(), 36u + 2 * 8);
  EXPECT_FALSE(has(plain.dsdt, "HPET"));
}

}  // namespace
}  // namespace vireo::x86::acpi
