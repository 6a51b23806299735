#include "arch/x86/acpi/sdt.h"

#include <cstdio>
#include <cstdlib>

#include "base/bytes.h"

namespace vireo::x86::acpi {

uint8_t ChecksumByte(std::span<const uint8_t> bytes) {
  uint8_t sum = 0;
  for (uint8_t b : bytes) sum = static_cast<uint8_t>(sum + b);
  return static_cast<uint8_t>(0 - sum);
}

void PutText(std::span<uint8_t> bytes, size_t offset, std::string_view text, size_t width,
             char pad) {
  for (size_t i = 0; i < width; ++i) {
    bytes[offset + i] = static_cast<uint8_t>(i < text.size() ? text[i] : pad);
  }
}

std::vector<uint8_t> NewTable(std::string_view signature, uint8_t revision,
                              std::string_view oem_table_id, size_t size) {
  if (signature.size() != 4 || oem_table_id.size() > 8 || size < kHeaderSize) {
    // Callers pass constants; getting one wrong is a Vireo bug.
    std::fputs("vireo: bad ACPI table header arguments\n", stderr);
    std::abort();
  }
  std::vector<uint8_t> table(size);
  PutText(table, header::kSignature, signature, 4);
  table[header::kRevision] = revision;
  PutText(table, header::kOemId, kOemId, 6);
  PutText(table, header::kOemTableId, oem_table_id, 8);
  StoreLe<uint32_t>(table, header::kOemRevision, 1);
  PutText(table, header::kCreatorId, kCreatorId, 4);
  StoreLe<uint32_t>(table, header::kCreatorRevision, 1);
  return table;
}

void FinishTable(std::vector<uint8_t>& table) {
  StoreLe<uint32_t>(table, header::kLength, static_cast<uint32_t>(table.size()));
  table[header::kChecksum] = 0;
  table[header::kChecksum] = ChecksumByte(table);
}

void PutGenericAddress(std::span<uint8_t> bytes, size_t offset, const GenericAddress& gas) {
  bytes[offset + 0] = static_cast<uint8_t>(gas.space);
  bytes[offset + 1] = gas.bit_width;
  bytes[offset + 2] = gas.bit_offset;
  bytes[offset + 3] = static_cast<uint8_t>(gas.access_size);
  StoreLe<uint64_t>(bytes, offset + 4, gas.address);
}

}  // namespace vireo::x86::acpi
