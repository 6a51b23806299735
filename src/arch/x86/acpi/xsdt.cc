// §5.2.8 Extended System Description Table (XSDT).
#include "arch/x86/acpi/sdt.h"
#include "arch/x86/acpi/tables.h"
#include "base/bytes.h"

namespace vireo::x86::acpi {

std::vector<uint8_t> BuildXsdt(std::span<const GuestAddress> tables) {
  // Revision 1 is the only XSDT revision; entries are 8 bytes each, right after the
  // header (so they are only 4-byte aligned: stored bytewise).
  std::vector<uint8_t> xsdt = NewTable("XSDT", 1, "VIREOXSD", kHeaderSize + 8 * tables.size());
  for (size_t i = 0; i < tables.size(); ++i) {
    StoreLe<uint64_t>(xsdt, kHeaderSize + 8 * i, tables[i]);
  }
  FinishTable(xsdt);
  return xsdt;
}

}  // namespace vireo::x86::acpi
