// PCI Firmware Specification 3.0 §4.1.2: the MCFG table ("Memory Mapped Configuration
// Space Base Address Description Table"), which tells the OS where ECAM lives.
//
//   0   header (36 bytes), revision 1
//   36  reserved (8 bytes)
//   44  allocation structures, 16 bytes each:
//         +0 base address (8)  +8 PCI segment group (2)  +10 start bus  +11 end bus
//         +12 reserved (4)
// The base address is that of bus 0 even when start_bus is not 0; Linux adds bus << 20 to it.
#include "arch/x86/acpi/sdt.h"
#include "arch/x86/acpi/tables.h"
#include "base/bytes.h"

namespace vireo::x86::acpi {

std::vector<uint8_t> BuildMcfg(GuestAddress ecam_base, uint8_t start_bus, uint8_t end_bus) {
  std::vector<uint8_t> mcfg =
      NewTable("MCFG", 1, "VIREOMCF", kMcfgAllocationOffset + kMcfgAllocationSize);
  StoreLe<uint64_t>(mcfg, kMcfgAllocationOffset, ecam_base);
  StoreLe<uint16_t>(mcfg, kMcfgAllocationOffset + 8, 0);  // segment group 0
  mcfg[kMcfgAllocationOffset + 10] = start_bus;
  mcfg[kMcfgAllocationOffset + 11] = end_bus;
  FinishTable(mcfg);
  return mcfg;
}

}  // namespace vireo::x86::acpi
