// Pieces every ACPI table shares: the System Description Table header (ACPI 6.4
// §5.2.6), the byte checksum, and the Generic Address Structure (§5.2.3.2).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace vireo::x86::acpi {

// §5.2.6: every table but the RSDP and FACS starts with this 36-byte header.
inline constexpr size_t kHeaderSize = 36;
namespace header {
inline constexpr size_t kSignature = 0;  // 4 bytes
inline constexpr size_t kLength = 4;     // 4 bytes, whole table including the header
inline constexpr size_t kRevision = 8;
inline constexpr size_t kChecksum = 9;
inline constexpr size_t kOemId = 10;            // 6 bytes
inline constexpr size_t kOemTableId = 16;       // 8 bytes
inline constexpr size_t kOemRevision = 24;      // 4 bytes
inline constexpr size_t kCreatorId = 28;        // 4 bytes
inline constexpr size_t kCreatorRevision = 32;  // 4 bytes
}  // namespace header

// What the OEM fields say about Vireo, in every table.
inline constexpr std::string_view kOemId = "VIREO ";  // 6 characters, space-padded
inline constexpr std::string_view kCreatorId = "VIRO";

// The byte that makes `bytes` sum to zero mod 256 once stored in it (checksum field
// counted as zero).
uint8_t ChecksumByte(std::span<const uint8_t> bytes);

// A table of `size` zero bytes with its header filled in except Length and Checksum.
// `oem_table_id` is padded with spaces to 8 characters.
std::vector<uint8_t> NewTable(std::string_view signature, uint8_t revision,
                              std::string_view oem_table_id, size_t size);

// Sets Length from the vector's size, then the Checksum so the table sums to zero.
void FinishTable(std::vector<uint8_t>& table);

// Copies `text` into `bytes` at `offset`, padded with `pad` to `width`.
void PutText(std::span<uint8_t> bytes, size_t offset, std::string_view text, size_t width,
             char pad = ' ');

// §5.2.3.2 Generic Address Structure (12 bytes).
enum class AddressSpace : uint8_t { kSystemMemory = 0, kSystemIo = 1 };
enum class AccessSize : uint8_t { kUndefined = 0, kByte = 1, kWord = 2, kDword = 3, kQword = 4 };
struct GenericAddress {
  AddressSpace space = AddressSpace::kSystemMemory;
  uint8_t bit_width = 0;
  uint8_t bit_offset = 0;
  AccessSize access_size = AccessSize::kUndefined;
  uint64_t address = 0;
};
inline constexpr size_t kGenericAddressSize = 12;
void PutGenericAddress(std::span<uint8_t> bytes, size_t offset, const GenericAddress& gas);

}  // namespace vireo::x86::acpi
