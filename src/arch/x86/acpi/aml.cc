#include "arch/x86/acpi/aml.h"

#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

namespace vireo::x86::acpi::aml {
namespace {

// §20.3 AML byte stream byte values.
constexpr uint8_t kZeroOp = 0x00;
constexpr uint8_t kOneOp = 0x01;
constexpr uint8_t kNameOp = 0x08;
constexpr uint8_t kBytePrefix = 0x0a;
constexpr uint8_t kWordPrefix = 0x0b;
constexpr uint8_t kDWordPrefix = 0x0c;
constexpr uint8_t kStringPrefix = 0x0d;
constexpr uint8_t kQWordPrefix = 0x0e;
constexpr uint8_t kScopeOp = 0x10;
constexpr uint8_t kBufferOp = 0x11;
constexpr uint8_t kPackageOp = 0x12;
constexpr uint8_t kDualNamePrefix = 0x2e;
constexpr uint8_t kMultiNamePrefix = 0x2f;
constexpr uint8_t kExtOpPrefix = 0x5b;
constexpr uint8_t kDeviceOp = 0x82;  // after kExtOpPrefix
constexpr uint8_t kRootChar = '\\';
constexpr uint8_t kParentPrefixChar = '^';
constexpr uint8_t kNullName = 0x00;

// §6.4.2 small and §6.4.3 large resource descriptor tags.
constexpr uint8_t kIrqNoFlagsTag = 0x22;  // small item 0x04, length 2
constexpr uint8_t kIoPortTag = 0x47;      // small item 0x08, length 7
constexpr uint8_t kEndTag = 0x79;         // small item 0x0f, length 1
constexpr uint8_t kMemory32FixedTag = 0x86;
constexpr uint16_t kMemory32FixedLength = 9;
constexpr uint8_t kIoDecode16 = 0x01;
constexpr uint8_t kDWordAddressTag = 0x87;
constexpr uint8_t kWordAddressTag = 0x88;
constexpr uint16_t kWordAddressLength = 13;  // bytes after the 3-byte large-item header
constexpr uint16_t kDWordAddressLength = 23;
// §6.4.3.5 Resource Type, General Flags and Type Specific Flags.
constexpr uint8_t kResourceMemory = 0;
constexpr uint8_t kResourceIo = 1;
constexpr uint8_t kResourceBusNumber = 2;
constexpr uint8_t kMinFixed = 1 << 2;  // _MIF
constexpr uint8_t kMaxFixed = 1 << 3;  // _MAF; bit 0 clear: producer, bit 1 clear: _DEC positive
constexpr uint8_t kIoEntireRange = 3;  // _RNG: ISA and non-ISA ports
constexpr uint8_t kMemoryReadWrite = 1 << 0;  // _RW; _MEM bits 2:1 = 0: non-cacheable

// The builder's inputs are Vireo constants; a bad one is a bug in Vireo, not guest data.
[[noreturn]] void Invariant(std::string_view what) {
  fmt::print(stderr, "vireo: AML builder invariant broken: {}\n", what);
  std::abort();
}

void Append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

void AppendLe(Bytes& out, uint64_t value, int size) {
  for (int i = 0; i < size; ++i) out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

bool IsLeadNameChar(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsLeadNameChar(c) || (c >= '0' && c <= '9'); }

// §20.2.2 NameSeg: a lead character then up to three name characters, '_'-padded to four.
void AppendNameSeg(Bytes& out, std::string_view seg) {
  if (seg.empty() || seg.size() > 4 || !IsLeadNameChar(seg[0])) {
    Invariant(fmt::format("bad NameSeg '{}'", seg));
  }
  for (char c : seg) {
    if (!IsNameChar(c)) Invariant(fmt::format("bad character in NameSeg '{}'", seg));
    out.push_back(static_cast<uint8_t>(c));
  }
  for (size_t i = seg.size(); i < 4; ++i) out.push_back('_');
}

// Opcode(s), then PkgLength over everything after it (§20.2.4: the length covers the
// PkgLength itself and the rest of the object, not the opcode).
Bytes WithPkgLength(std::initializer_list<uint8_t> opcode, const Bytes& contents) {
  Bytes out(opcode);
  Append(out, PkgLength(contents.size()));
  Append(out, contents);
  return out;
}

}  // namespace

Bytes PkgLength(size_t content_length) {
  // One byte holds totals up to 63 in bits 0-5. Longer forms put the count of
  // following bytes in bits 6-7 of the lead byte, the low nibble in bits 0-3, and
  // the rest of the value in the following bytes, least significant first.
  if (content_length + 1 <= 0x3f) return {static_cast<uint8_t>(content_length + 1)};
  for (int follow = 1; follow <= 3; ++follow) {
    const uint64_t total = content_length + 1 + follow;
    if (total >= (uint64_t{1} << (4 + 8 * follow))) continue;
    Bytes out{static_cast<uint8_t>((follow << 6) | (total & 0x0f))};
    for (int i = 0; i < follow; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
    return out;
  }
  Invariant(fmt::format("AML object of {} bytes exceeds PkgLength's 2^28 limit", content_length));
}

Bytes NameString(std::string_view path) {
  Bytes out;
  if (!path.empty() && path[0] == '\\') {
    out.push_back(kRootChar);
    path.remove_prefix(1);
  } else {
    while (!path.empty() && path[0] == '^') {
      out.push_back(kParentPrefixChar);
      path.remove_prefix(1);
    }
  }
  std::vector<std::string_view> segs;
  while (!path.empty()) {
    const size_t dot = path.find('.');
    segs.push_back(path.substr(0, dot));
    path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
  }
  if (segs.empty()) {
    out.push_back(kNullName);
  } else if (segs.size() == 2) {
    out.push_back(kDualNamePrefix);
  } else if (segs.size() > 2) {
    if (segs.size() > 255) Invariant("NameString with more than 255 segments");
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segs.size()));
  }
  for (std::string_view seg : segs) AppendNameSeg(out, seg);
  return out;
}

Bytes Integer(uint64_t value) {
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  Bytes out;
  if (value <= 0xff) {
    out.push_back(kBytePrefix);
    AppendLe(out, value, 1);
  } else if (value <= 0xffff) {
    out.push_back(kWordPrefix);
    AppendLe(out, value, 2);
  } else if (value <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    AppendLe(out, value, 4);
  } else {
    out.push_back(kQWordPrefix);
    AppendLe(out, value, 8);
  }
  return out;
}

Bytes String(std::string_view text) {
  Bytes out{kStringPrefix};
  for (char c : text) {
    // AsciiCharList excludes NUL and is 7-bit (§20.2.3).
    if (c == '\0' || static_cast<unsigned char>(c) > 0x7f) Invariant("non-ASCII AML string");
    out.push_back(static_cast<uint8_t>(c));
  }
  out.push_back(0);
  return out;
}

Bytes EisaId(std::string_view id) {
  // Three upper-case letters in 5 bits each (A = 1), then four hex digits; the DWORD is
  // stored byte-swapped so the manufacturer code comes first in memory.
  if (id.size() != 7) Invariant(fmt::format("EISA id '{}' is not 7 characters", id));
  uint32_t value = 0;
  for (int i = 0; i < 3; ++i) {
    if (id[i] < 'A' || id[i] > 'Z') Invariant(fmt::format("bad EISA vendor in '{}'", id));
    value |= static_cast<uint32_t>(id[i] - 0x40) << (26 - 5 * i);
  }
  for (int i = 3; i < 7; ++i) {
    const char c = id[i];
    uint32_t digit;
    if (c >= '0' && c <= '9') {
      digit = c - '0';
    } else if (c >= 'A' && c <= 'F') {
      digit = c - 'A' + 10;
    } else {
      Invariant(fmt::format("bad EISA product number in '{}'", id));
    }
    value |= digit << (4 * (6 - i));
  }
  Bytes out{kDWordPrefix};
  AppendLe(out, __builtin_bswap32(value), 4);
  return out;
}

Bytes Package(std::initializer_list<Bytes> elements) {
  if (elements.size() > 255) Invariant("Package with more than 255 elements");
  Bytes contents{static_cast<uint8_t>(elements.size())};
  for (const Bytes& element : elements) Append(contents, element);
  return WithPkgLength({kPackageOp}, contents);
}

Bytes Buffer(std::span<const uint8_t> data) {
  Bytes contents = Integer(data.size());
  contents.insert(contents.end(), data.begin(), data.end());
  return WithPkgLength({kBufferOp}, contents);
}

Bytes Name(std::string_view path, const Bytes& object) {
  Bytes out{kNameOp};
  Append(out, NameString(path));
  Append(out, object);
  return out;
}

Bytes Scope(std::string_view path, std::span<const Bytes> terms) {
  Bytes contents = NameString(path);
  for (const Bytes& term : terms) Append(contents, term);
  return WithPkgLength({kScopeOp}, contents);
}

Bytes Scope(std::string_view path, std::initializer_list<Bytes> terms) {
  return Scope(path, std::span<const Bytes>(terms.begin(), terms.size()));
}

Bytes Device(std::string_view path, std::initializer_list<Bytes> terms) {
  Bytes contents = NameString(path);
  for (const Bytes& term : terms) Append(contents, term);
  return WithPkgLength({kExtOpPrefix, kDeviceOp}, contents);
}

ResourceTemplate& ResourceTemplate::Io(uint16_t base, uint8_t length, uint8_t alignment) {
  // Byte 1 bit 0: the device decodes all 16 address bits. Min and max base are equal:
  // the port is fixed, not relocatable.
  descriptors_.push_back(kIoPortTag);
  descriptors_.push_back(kIoDecode16);
  AppendLe(descriptors_, base, 2);
  AppendLe(descriptors_, base, 2);
  descriptors_.push_back(alignment);
  descriptors_.push_back(length);
  return *this;
}

ResourceTemplate& ResourceTemplate::IrqNoFlags(std::initializer_list<uint8_t> irqs) {
  // A 16-bit mask of ISA IRQs; the 2-byte form implies edge, active high, exclusive.
  uint16_t mask = 0;
  for (uint8_t irq : irqs) {
    if (irq >= 16) Invariant(fmt::format("ISA IRQ {} out of range", irq));
    mask |= static_cast<uint16_t>(1u << irq);
  }
  descriptors_.push_back(kIrqNoFlagsTag);
  AppendLe(descriptors_, mask, 2);
  return *this;
}

ResourceTemplate& ResourceTemplate::Memory32Fixed(bool read_write, uint32_t base, uint32_t length) {
  descriptors_.push_back(kMemory32FixedTag);
  AppendLe(descriptors_, kMemory32FixedLength, 2);
  descriptors_.push_back(read_write ? 1 : 0);  // information byte bit 0: writeable
  AppendLe(descriptors_, base, 4);
  AppendLe(descriptors_, length, 4);
  return *this;
}

namespace {

// Granularity, minimum, maximum, translation offset and length, each `size` bytes.
void AppendAddressSpace(Bytes& out, uint8_t tag, uint16_t length, uint8_t type, uint8_t type_flags,
                        uint64_t min, uint64_t max, int size) {
  if (max < min || max - min >= (uint64_t{1} << (8 * size)) - 1) {
    Invariant(fmt::format("address range {:#x}-{:#x} does not fit {}-byte fields", min, max, size));
  }
  out.push_back(tag);
  AppendLe(out, length, 2);
  out.push_back(type);
  out.push_back(kMinFixed | kMaxFixed);
  out.push_back(type_flags);
  AppendLe(out, 0, size);  // _GRA: no alignment rule, the range is fixed
  AppendLe(out, min, size);
  AppendLe(out, max, size);
  AppendLe(out, 0, size);  // translation offset
  AppendLe(out, max - min + 1, size);
}

}  // namespace

ResourceTemplate& ResourceTemplate::WordBusNumber(uint16_t min, uint16_t max) {
  AppendAddressSpace(descriptors_, kWordAddressTag, kWordAddressLength, kResourceBusNumber, 0, min,
                     max, 2);
  return *this;
}

ResourceTemplate& ResourceTemplate::WordIo(uint16_t min, uint16_t max) {
  AppendAddressSpace(descriptors_, kWordAddressTag, kWordAddressLength, kResourceIo, kIoEntireRange,
                     min, max, 2);
  return *this;
}

ResourceTemplate& ResourceTemplate::DWordMemory(uint32_t min, uint32_t max) {
  AppendAddressSpace(descriptors_, kDWordAddressTag, kDWordAddressLength, kResourceMemory,
                     kMemoryReadWrite, min, max, 4);
  return *this;
}

Bytes ResourceTemplate::Build() const {
  Bytes data = descriptors_;
  data.push_back(kEndTag);
  // §6.4.2.9: a zero checksum means "treat as valid" — what ASL compilers emit too.
  data.push_back(0);
  return Buffer(data);
}

}  // namespace vireo::x86::acpi::aml
