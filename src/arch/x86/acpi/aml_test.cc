#include "arch/x86/acpi/aml.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace vireo::x86::acpi::aml {
namespace {

// Decodes a PkgLength the way an AML interpreter does (§20.2.4), independently of the
// encoder: returns {value, bytes used}.
std::optional<std::pair<size_t, size_t>> DecodePkgLength(const Bytes& bytes) {
  if (bytes.empty()) return std::nullopt;
  const size_t follow = bytes[0] >> 6;
  if (bytes.size() != follow + 1) return std::nullopt;
  if (follow == 0) return std::make_pair(size_t{bytes[0] & 0x3fu}, size_t{1});
  if (bytes[0] & 0x30) return std::nullopt;  // bits 4-5 must be zero in multi-byte form
  size_t value = bytes[0] & 0x0f;
  for (size_t i = 0; i < follow; ++i) value |= size_t{bytes[1 + i]} << (4 + 8 * i);
  return std::make_pair(value, follow + 1);
}

TEST(AmlPkgLength, ShortFormCountsItsOwnByte) {
  EXPECT_EQ(PkgLength(0), (Bytes{0x01}));
  EXPECT_EQ(PkgLength(10), (Bytes{0x0b}));
  EXPECT_EQ(PkgLength(62), (Bytes{0x3f}));  // largest one-byte total: 63
}

TEST(AmlPkgLength, LongFormsAtTheirBoundaries) {
  // 63 content bytes: total 65 = 0x41 in two bytes.
  EXPECT_EQ(PkgLength(63), (Bytes{0x41, 0x04}));
  // Largest two-byte total is 0xfff.
  EXPECT_EQ(PkgLength(0xfff - 2), (Bytes{0x4f, 0xff}));
  // One more needs three bytes: total 0x1001.
  EXPECT_EQ(PkgLength(0xfff - 1), (Bytes{0x81, 0x00, 0x01}));
  // Largest three-byte total is 0xfffff; one more needs four: total 0x100001.
  EXPECT_EQ(PkgLength(0xfffff - 3), (Bytes{0x8f, 0xff, 0xff}));
  EXPECT_EQ(PkgLength(0xfffff - 2), (Bytes{0xc1, 0x00, 0x00, 0x01}));
}

TEST(AmlPkgLength, RoundTripsAndCoversItself) {
  for (size_t content : {0ul, 1ul, 60ul, 61ul, 62ul, 63ul, 64ul, 100ul, 4000ul, 4093ul, 4094ul,
                         4095ul, 65535ul, 1048572ul, 1048573ul, 1048576ul, 0xfffffeful}) {
    const Bytes encoded = PkgLength(content);
    const auto decoded = DecodePkgLength(encoded);
    ASSERT_TRUE(decoded) << "content " << content;
    EXPECT_EQ(decoded->first, content + decoded->second) << "content " << content;
  }
}

TEST(AmlNameString, PadsSegmentsAndUsesPrefixes) {
  EXPECT_EQ(NameString("_S5"), (Bytes{'_', 'S', '5', '_'}));
  EXPECT_EQ(NameString("\\_SB"), (Bytes{'\\', '_', 'S', 'B', '_'}));
  EXPECT_EQ(NameString("\\_SB.COM1"), (Bytes{'\\', 0x2e, '_', 'S', 'B', '_', 'C', 'O', 'M', '1'}));
  EXPECT_EQ(NameString("A.B.C"),
            (Bytes{0x2f, 3, 'A', '_', '_', '_', 'B', '_', '_', '_', 'C', '_', '_', '_'}));
  EXPECT_EQ(NameString("^^FOO"), (Bytes{'^', '^', 'F', 'O', 'O', '_'}));
  EXPECT_EQ(NameString("\\"), (Bytes{'\\', 0x00}));
}

TEST(AmlNameStringDeathTest, RejectsBadNames) {
  EXPECT_DEATH(NameString("TOOLONG"), "NameSeg");
  EXPECT_DEATH(NameString("1ABC"), "NameSeg");
  EXPECT_DEATH(NameString("ab"), "NameSeg");
}

TEST(AmlData, IntegersUseTheShortestEncoding) {
  EXPECT_EQ(Integer(0), (Bytes{0x00}));
  EXPECT_EQ(Integer(1), (Bytes{0x01}));
  EXPECT_EQ(Integer(5), (Bytes{0x0a, 0x05}));
  EXPECT_EQ(Integer(0x3f8), (Bytes{0x0b, 0xf8, 0x03}));
  EXPECT_EQ(Integer(0xfee00000), (Bytes{0x0c, 0x00, 0x00, 0xe0, 0xfe}));
  EXPECT_EQ(Integer(0x100000000), (Bytes{0x0e, 0, 0, 0, 0, 1, 0, 0, 0}));
}

TEST(AmlData, StringsAndEisaIds) {
  EXPECT_EQ(String("AB"), (Bytes{0x0d, 'A', 'B', 0x00}));
  // iasl compiles EisaId("PNP0501") to 0x0105D041.
  EXPECT_EQ(EisaId("PNP0501"), (Bytes{0x0c, 0x41, 0xd0, 0x05, 0x01}));
  EXPECT_EQ(EisaId("PNP0B00"), (Bytes{0x0c, 0x41, 0xd0, 0x0b, 0x00}));
}

TEST(AmlPackage, ShortPackageEncoding) {
  // Name (_S5, Package (4) {5, 5, 0, 0})
  const Bytes s5 = Name("_S5", Package({Integer(5), Integer(5), Integer(0), Integer(0)}));
  EXPECT_EQ(
      s5, (Bytes{0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00}));
}

TEST(AmlPackage, LongPackageUsesMultiBytePkgLength) {
  const Bytes text = String(std::string(100, 'x'));  // 102 bytes
  const Bytes package = Package({text, text});
  // PackageOp, 2-byte PkgLength, NumElements, 204 element bytes.
  ASSERT_EQ(package.size(), 1u + 2u + 1u + 204u);
  EXPECT_EQ(package[0], 0x12);
  const auto decoded = DecodePkgLength(Bytes(package.begin() + 1, package.begin() + 3));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->first, package.size() - 1);  // everything after the opcode
  EXPECT_EQ(package[3], 2);
}

TEST(AmlObjects, ScopeAndDevice) {
  const Bytes device = Device("COM1", {Name("_UID", Integer(1))});
  EXPECT_EQ(device, (Bytes{0x5b, 0x82, 0x0b, 'C', 'O', 'M', '1', 0x08, '_', 'U', 'I', 'D', 0x01}));
  const Bytes scope = Scope("\\_SB", {});
  EXPECT_EQ(scope, (Bytes{0x10, 0x06, '\\', '_', 'S', 'B', '_'}));
}

TEST(AmlResourceTemplate, IoAndIrqWithEndTag) {
  const Bytes crs = ResourceTemplate().Io(0x3f8, 8).IrqNoFlags({4}).Build();
  EXPECT_EQ(crs, (Bytes{0x11, 0x10, 0x0a, 0x0d,                          // Buffer(13)
                        0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08,  // IO
                        0x22, 0x10, 0x00,                                // IRQNoFlags {4}
                        0x79, 0x00}));                                   // End tag
}

TEST(AmlResourceTemplate, Memory32Fixed) {
  const Bytes crs = ResourceTemplate().Memory32Fixed(true, 0xfec00000, 0x1000).Build();
  EXPECT_EQ(crs, (Bytes{0x11, 0x11, 0x0a, 0x0e, 0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0xc0, 0xfe,
                        0x00, 0x10, 0x00, 0x00, 0x79, 0x00}));
}

// Bytes typed in from ACPI 6.4 §6.4.3.5.2-3: tag, length, resource type, general flags
// (MinFixed | MaxFixed, producer, positive decode), type-specific flags, then granularity,
// minimum, maximum, translation offset and length.
TEST(AmlResourceTemplate, HostBridgeAddressSpaces) {
  const Bytes crs = ResourceTemplate()
                        .WordBusNumber(0, 0)
                        .WordIo(0x0d00, 0xffff)
                        .DWordMemory(0xc0000000, 0xdfffffff)
                        .Build();
  EXPECT_EQ(crs, (Bytes{0x11, 0x3f, 0x0a, 0x3c,  // Buffer(60)
                                                 // WordBusNumber 0-0, length 1
                        0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                        0x00, 0x00, 0x01, 0x00,
                        // WordIO 0x0d00-0xffff, EntireRange, length 0xf300
                        0x88, 0x0d, 0x00, 0x01, 0x0c, 0x03, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xff,
                        0x00, 0x00, 0x00, 0xf3,
                        // DWordMemory 0xc0000000-0xdfffffff, read-write, non-cacheable
                        0x87, 0x17, 0x00, 0x00, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                        0x00, 0xc0, 0xff, 0xff, 0xff, 0xdf, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                        0x00, 0x20, 0x79, 0x00}));  // End tag
}

TEST(AmlResourceTemplateDeathTest, RejectsRangesTheFieldsCannotHold) {
  EXPECT_DEATH(ResourceTemplate().WordIo(0, 0xffff), "does not fit");  // length 0x10000
  EXPECT_DEATH(ResourceTemplate().WordBusNumber(1, 0), "does not fit");
}

}  // namespace
}  // namespace vireo::x86::acpi::aml
