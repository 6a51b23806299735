// §5.2.11.1 Differentiated System Description Table (DSDT): the AML namespace.
//
// \_S5 tells the OS which SLP_TYP value means soft-off (§7.4.2.6); \_SB holds the ISA
// devices an OS cannot probe by itself, each with its hardware id (§6.1.5 _HID) and
// current resources (§6.2.2 _CRS). Everything is a constant Name: no control methods.
//
// With PCI on, \_SB.PCI0 is the host bridge of segment 0, bus 0, and \_SB.MRES
// (PNP0C02, motherboard resources) reserves the ECAM window, as the PCI Firmware Spec
// (§4.1.2) requires and Linux checks before it trusts the MCFG. Without _OSC the OS leaves native
// PCIe control (hotplug, AER, PME) to the platform; without _PRT there is no INTx routing: devices
// use MSI-X.
#include <fmt/format.h>

#include "arch/x86/acpi/aml.h"
#include "arch/x86/acpi/sdt.h"
#include "arch/x86/acpi/tables.h"

namespace vireo::x86::acpi {
namespace {

// Revision 2: integers in this table are 64 bits wide (§5.2.11.1).
constexpr uint8_t kDsdtRevision = 2;

// §6.3.7 _STA bits: present, enabled, functioning, but not shown in the UI — the value
// QEMU gives fw_cfg, which is firmware plumbing rather than a user-visible device.
constexpr uint64_t kStaPresentHidden = 0x0b;

aml::Bytes SleepStates() {
  // §7.4.2 \_Sx package: SLP_TYPa, SLP_TYPb, two reserved. Only S5 is offered, so the
  // OS never tries S1-S4 (the PM device would ignore them anyway).
  return aml::Name("_S5", aml::Package({aml::Integer(kS5SleepType), aml::Integer(kS5SleepType),
                                        aml::Integer(0), aml::Integer(0)}));
}

aml::Bytes Com1() {
  // 16550 UART at the PC's first serial port (PNP0501: 16550A-compatible).
  return aml::Device(
      "COM1", {aml::Name("_HID", aml::EisaId("PNP0501")), aml::Name("_UID", aml::Integer(1)),
               aml::Name("_CRS", aml::ResourceTemplate().Io(0x3f8, 8).IrqNoFlags({4}).Build())});
}

aml::Bytes Rtc() {
  // MC146818 CMOS RTC: index/data ports 0x70-0x71, IRQ 8 (PNP0B00: AT RTC).
  return aml::Device(
      "RTC", {aml::Name("_HID", aml::EisaId("PNP0B00")),
              aml::Name("_CRS", aml::ResourceTemplate().Io(0x70, 2).IrqNoFlags({8}).Build())});
}

aml::Bytes Keyboard() {
  // i8042: data port 0x60, command/status port 0x64, keyboard on IRQ 1 (PNP0303: IBM
  // Enhanced keyboard). Linux's i8042 driver finds the controller through this device.
  return aml::Device(
      "KBD",
      {aml::Name("_HID", aml::EisaId("PNP0303")),
       aml::Name("_CRS", aml::ResourceTemplate().Io(0x60, 1).Io(0x64, 1).IrqNoFlags({1}).Build())});
}

aml::Bytes FwCfg() {
  // QEMU's firmware configuration interface: selector and data ports at 0x510-0x511.
  // QEMU0002 is a string _HID (not an EISA id), as Linux's qemu_fw_cfg driver matches.
  return aml::Device("FWCF", {aml::Name("_HID", aml::String("QEMU0002")),
                              aml::Name("_STA", aml::Integer(kStaPresentHidden)),
                              aml::Name("_CRS", aml::ResourceTemplate().Io(0x510, 2).Build())});
}

aml::Bytes Hpet() {
  // PNP0103 (HPET System Timer) reserving the register block, as QEMU's pc machine emits
  // it; Linux's timer code reads the HPET table, the hpet char driver this device.
  return aml::Device("HPET",
                     {aml::Name("_HID", aml::EisaId("PNP0103")), aml::Name("_UID", aml::Integer(0)),
                      aml::Name("_CRS", aml::ResourceTemplate()
                                            .Memory32Fixed(false, static_cast<uint32_t>(kHpetBase),
                                                           static_cast<uint32_t>(kHpetSize))
                                            .Build())});
}

aml::Bytes PciHostBridge(const AcpiConfig& config) {
  // PNP0A08: PCI Express root bridge, PNP0A03 (PCI bus) for OSes that only know that.
  // _CRS lists what the bridge decodes: bus 0, its configuration ports, and the windows
  // BARs are assigned from (ports above the ISA range, the 32-bit memory window).
  const auto mmio_base = static_cast<uint32_t>(config.pci_mmio_base);
  const auto mmio_last = static_cast<uint32_t>(config.pci_mmio_base + config.pci_mmio_size - 1);
  return aml::Device(
      "PCI0", {aml::Name("_HID", aml::EisaId("PNP0A08")), aml::Name("_CID", aml::EisaId("PNP0A03")),
               aml::Name("_SEG", aml::Integer(0)), aml::Name("_BBN", aml::Integer(0)),
               aml::Name("_UID", aml::Integer(0)),
               aml::Name("_CRS", aml::ResourceTemplate()
                                     .WordBusNumber(0, 0)
                                     .Io(kPciConfigPorts, 8)
                                     .WordIo(kPciIoWindowStart, 0xffff)
                                     .DWordMemory(mmio_base, mmio_last)
                                     .Build())});
}

aml::Bytes EcamReservation(const AcpiConfig& config) {
  // PNP0C02: resources the motherboard decodes that belong to no other device.
  return aml::Device(
      "MRES",
      {aml::Name("_HID", aml::EisaId("PNP0C02")), aml::Name("_UID", aml::Integer(0)),
       aml::Name("_CRS", aml::ResourceTemplate()
                             .Memory32Fixed(true, static_cast<uint32_t>(config.pci_ecam_base),
                                            static_cast<uint32_t>(kEcamBusSize))
                             .Build())});
}

// A virtio-mmio device (virtio 1.2, 4.2.1; Linux binds LNRO0005 to its virtio_mmio driver).
aml::Bytes VirtioMmio(size_t index, const VirtioMmioDevice& device) {
  const std::string name = fmt::format("VR{:02X}", index);
  return aml::Device(
      name,
      {aml::Name("_HID", aml::String("LNRO0005")), aml::Name("_UID", aml::Integer(index)),
       aml::Name("_CRS", aml::ResourceTemplate()
                             .Memory32Fixed(true, static_cast<uint32_t>(device.base), device.size)
                             .IrqNoFlags({device.irq})
                             .Build())});
}

}  // namespace

std::vector<uint8_t> BuildDsdt() { return BuildDsdt(AcpiConfig{}); }

std::vector<uint8_t> BuildDsdt(const AcpiConfig& config) {
  const aml::Bytes sleep = SleepStates();
  // §5.3.1 predefined root namespace: \_SB is where system-bus devices live.
  std::vector<aml::Bytes> devices = {Com1(), Rtc(), Keyboard(), FwCfg()};
  if (config.pci) {
    devices.push_back(PciHostBridge(config));
    devices.push_back(EcamReservation(config));
  }
  for (size_t i = 0; i < config.virtio_mmio.size(); ++i) {
    devices.push_back(VirtioMmio(i, config.virtio_mmio[i]));
  }
  if (config.hpet) devices.push_back(Hpet());
  const aml::Bytes system_bus = aml::Scope("\\_SB", devices);

  std::vector<uint8_t> dsdt = NewTable("DSDT", kDsdtRevision, "VIREODSD", kHeaderSize);
  dsdt.insert(dsdt.end(), sleep.begin(), sleep.end());
  dsdt.insert(dsdt.end(), system_bus.begin(), system_bus.end());
  FinishTable(dsdt);
  return dsdt;
}

}  // namespace vireo::x86::acpi
