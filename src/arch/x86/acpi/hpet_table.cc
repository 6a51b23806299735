// IA-PC HPET Specification 1.0a §3.2.4: the HPET description table, which Linux's
// acpi_parse_hpet reads to find the event timer block.
//
//   0   header (36 bytes), signature "HPET", revision 1
//   36  event timer block ID (4): the low half of the block's capabilities register
//   40  base address (12): Generic Address Structure, system memory
//   52  HPET number (1)
//   53  main counter minimum clock tick in periodic mode (2)
//   55  page protection and OEM attribute (1): none
#include "arch/x86/acpi/sdt.h"
#include "arch/x86/acpi/tables.h"
#include "base/bytes.h"

namespace vireo::x86::acpi {

std::vector<uint8_t> BuildHpet(GuestAddress base, uint32_t event_timer_block_id) {
  std::vector<uint8_t> hpet = NewTable("HPET", 1, "VIREOHPT", kHpetTableSize);
  StoreLe<uint32_t>(hpet, 36, event_timer_block_id);
  // Register width 64 bits, as QEMU and PC firmware describe the block.
  PutGenericAddress(hpet, 40,
                    {.space = AddressSpace::kSystemMemory, .bit_width = 64, .address = base});
  hpet[52] = 0;
  // The smallest periodic tick the OS should program without losing interrupts: 128
  // counts (12.8 us at 10 MHz), the value PC firmware commonly reports.
  StoreLe<uint16_t>(hpet, 53, 128);
  hpet[55] = 0;
  FinishTable(hpet);
  return hpet;
}

}  // namespace vireo::x86::acpi
