// AML byte-code builder: just enough of ACPI 6.4 §20 (ACPI Machine Language) to
// describe a static PC platform in the DSDT — names, integers, strings, packages,
// scopes, devices and ResourceTemplate buffers. No methods: everything Vireo tells
// the guest is a constant, so the namespace is data an OS can read without running code.
//
// Each builder returns the encoded bytes of one term; callers nest them by passing
// the bytes of the children. Names and sizes come from Vireo's own code, never from
// the guest, so a malformed name or an oversized object is a VMM bug and aborts.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>
#include <vector>

namespace vireo::x86::acpi::aml {

using Bytes = std::vector<uint8_t>;

// §20.2.4 PkgLength for an object whose contents (after the PkgLength) are
// `content_length` bytes. The encoded value counts its own bytes too.
Bytes PkgLength(size_t content_length);

// §20.2.2 NameString: "\\_SB.COM1", "_S5", "^PCI0.ISA". Segments shorter than four
// characters are padded with '_' as ASL does ("_S5" -> "_S5_").
Bytes NameString(std::string_view path);

// §20.2.3 ComputationalData: the shortest encoding of `value` (ZeroOp, OneOp,
// BytePrefix, WordPrefix, DWordPrefix or QWordPrefix).
Bytes Integer(uint64_t value);

// §20.2.3 String: StringPrefix, ASCII characters, NUL.
Bytes String(std::string_view text);

// ASL EISAID() macro (§19.6, "EISAID"): "PNP0501" compressed into a DWordConst, as _HID expects.
Bytes EisaId(std::string_view id);

// §20.2.5.4 DefPackage: PackageOp PkgLength NumElements PackageElementList (at most 255).
Bytes Package(std::initializer_list<Bytes> elements);

// §20.2.5.4 DefBuffer: BufferOp PkgLength BufferSize ByteList.
Bytes Buffer(std::span<const uint8_t> data);

// §20.2.5.1 DefName: NameOp NameString DataRefObject.
Bytes Name(std::string_view path, const Bytes& object);

// §20.2.5.1 DefScope: ScopeOp PkgLength NameString TermList.
Bytes Scope(std::string_view path, std::initializer_list<Bytes> terms);
Bytes Scope(std::string_view path, std::span<const Bytes> terms);

// §20.2.5.2 DefDevice: ExtOpPrefix DeviceOp PkgLength NameString TermList.
Bytes Device(std::string_view path, std::initializer_list<Bytes> terms);

// §6.4 resource descriptors, assembled into the Buffer a _CRS returns (ASL's
// ResourceTemplate). Build() appends the End Tag.
class ResourceTemplate {
 public:
  // §6.4.2.5 I/O Port Descriptor, 16-bit decode, fixed at `base` (min == max).
  ResourceTemplate& Io(uint16_t base, uint8_t length, uint8_t alignment = 1);
  // §6.4.2.1 IRQ Descriptor, 2-byte form (ASL IRQNoFlags: edge, active high, exclusive).
  ResourceTemplate& IrqNoFlags(std::initializer_list<uint8_t> irqs);
  // §6.4.3.4 32-Bit Fixed Memory Range Descriptor.
  ResourceTemplate& Memory32Fixed(bool read_write, uint32_t base, uint32_t length);

  // §6.4.3.5 Address Space Descriptors, as a PCI host bridge's _CRS uses them: ranges the
  // bridge produces (decodes for its children), positive decode, fixed [min, max], no
  // translation, no resource source. ASL WordBusNumber / WordIO / DWordMemory.
  // §6.4.3.5.3 Word form, resource type 2 (bus numbers).
  ResourceTemplate& WordBusNumber(uint16_t min, uint16_t max);
  // §6.4.3.5.3 Word form, resource type 1 (I/O), ISA and non-ISA ranges (EntireRange).
  ResourceTemplate& WordIo(uint16_t min, uint16_t max);
  // §6.4.3.5.2 DWord form, resource type 0 (memory), read-write, non-cacheable.
  ResourceTemplate& DWordMemory(uint32_t min, uint32_t max);

  // The descriptors plus §6.4.2.9 End Tag, wrapped in a Buffer term.
  Bytes Build() const;

 private:
  Bytes descriptors_;
};

}  // namespace vireo::x86::acpi::aml
