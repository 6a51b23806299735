// Cross-checks the AML builder against ACPICA's own disassembler: if `iasl` (Debian
// package acpica-tools, installed by scripts/install-deps.sh) is on PATH, the DSDT must
// disassemble without errors and show the objects Vireo put in it, and the FADT and
// MADT must decode with the field values Vireo meant.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "arch/x86/acpi/acpi.h"
#include "arch/x86/acpi/tables.h"

namespace vireo::x86::acpi {
namespace {

std::optional<std::string> FindOnPath(const std::string& program) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  std::stringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    const std::string candidate = dir + "/" + program;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

struct RunResult {
  int exit_code = -1;
  std::string output;
};

RunResult RunShell(const std::string& command) {
  RunResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) result.output.append(buffer, n);
  const int status = pclose(pipe);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::string ReadFile(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Field lines read "[offset] Name : Value" with the name right-aligned: compare with
// runs of spaces squeezed so the tests do not depend on iasl's column widths.
std::string Squeeze(std::string_view text) {
  std::string out;
  for (char c : text) {
    if (c == ' ' && !out.empty() && out.back() == ' ') continue;
    out.push_back(c);
  }
  return out;
}

bool HasField(std::string_view dsl, std::string_view line) {
  return Squeeze(dsl).find(Squeeze(line)) != std::string::npos;
}

// iasl reports bad checksums and lengths as warnings, and exits 0 anyway.
bool Clean(std::string_view output) {
  return output.find("Error") == std::string::npos && output.find("Warning") == std::string::npos &&
         output.find("Incorrect") == std::string::npos;
}

class IaslTest : public testing::Test {
 protected:
  struct Disassembly {
    int exit_code = -1;
    std::string output;  // what iasl printed
    std::string dsl;     // the disassembled file
  };

  void SetUp() override {
    iasl_ = FindOnPath("iasl");
    if (!iasl_) GTEST_SKIP() << "iasl not found on PATH (install acpica-tools to run this check)";
    std::string pattern = testing::TempDir() + "vireo-acpi-XXXXXX";
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  Disassembly Disassemble(const std::string& name, const std::vector<uint8_t>& table) {
    {
      std::ofstream out(dir_ / (name + ".aml"), std::ios::binary);
      out.write(reinterpret_cast<const char*>(table.data()),
                static_cast<std::streamsize>(table.size()));
    }
    const RunResult run =
        RunShell("cd '" + dir_.string() + "' && '" + *iasl_ + "' -d " + name + ".aml");
    return {run.exit_code, run.output, ReadFile(dir_ / (name + ".dsl"))};
  }

  std::optional<std::string> iasl_;
  std::filesystem::path dir_;
};

TEST_F(IaslTest, DsdtDisassemblesAndRecompiles) {
  const Disassembly dsdt = Disassemble("dsdt", BuildDsdt());
  ASSERT_EQ(dsdt.exit_code, 0) << dsdt.output;
  EXPECT_TRUE(Clean(dsdt.output)) << dsdt.output;
  // iasl prints the NameSeg without its '_' padding ("Name (_S5, ...") and names the
  // full segment in its comment ("// _S5_: S5 System State").
  EXPECT_NE(dsdt.dsl.find("_S5_"), std::string::npos) << dsdt.dsl;
  EXPECT_NE(dsdt.dsl.find("Name (_S5, Package (0x04)"), std::string::npos) << dsdt.dsl;
  EXPECT_NE(dsdt.dsl.find("PNP0501"), std::string::npos) << dsdt.dsl;
  EXPECT_NE(dsdt.dsl.find("PNP0B00"), std::string::npos) << dsdt.dsl;
  EXPECT_NE(dsdt.dsl.find("PNP0303"), std::string::npos) << dsdt.dsl;
  EXPECT_NE(dsdt.dsl.find("\"QEMU0002\""), std::string::npos) << dsdt.dsl;
  EXPECT_NE(dsdt.dsl.find("IO (Decode16,"), std::string::npos) << dsdt.dsl;
  EXPECT_NE(dsdt.dsl.find("IRQNoFlags ()"), std::string::npos) << dsdt.dsl;

  // The disassembly must compile back: the byte stream is well-formed ASL, not merely
  // parseable.
  const RunResult compile =
      RunShell("cd '" + dir_.string() + "' && '" + *iasl_ + "' -p recompiled dsdt.dsl");
  EXPECT_EQ(compile.exit_code, 0) << compile.output;
  EXPECT_NE(compile.output.find("0 Errors"), std::string::npos) << compile.output;
}

TEST_F(IaslTest, PciHostBridgeDisassemblesAndRecompiles) {
  AcpiConfig config;
  config.pci = true;
  const Disassembly dsdt = Disassemble("dsdt", BuildDsdt(config));
  ASSERT_EQ(dsdt.exit_code, 0) << dsdt.output;
  EXPECT_TRUE(Clean(dsdt.output)) << dsdt.output;
  for (const char* text :
       {"Device (PCI0)",
        "EisaId (\"PNP0A08\")",
        "EisaId (\"PNP0A03\")",
        "Name (_SEG, Zero)",
        "Name (_BBN, Zero)",
        "Name (_UID, Zero)",
        "WordBusNumber (ResourceProducer, MinFixed, MaxFixed, PosDecode,",
        "IO (Decode16,",
        "0x0CF8,",
        "WordIO (ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange,",
        "0x0D00,",
        "0xF300,",
        "DWordMemory (ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite,",
        "0xC0000000,",
        "0xDFFFFFFF,",
        "0x20000000,",
        "Device (MRES)",
        "EisaId (\"PNP0C02\")",
        "Memory32Fixed (ReadWrite,",
        "0xE0000000,",
        "0x00100000,"}) {
    EXPECT_TRUE(HasField(dsdt.dsl, text)) << text << "\n" << dsdt.dsl;
  }
  const RunResult compile =
      RunShell("cd '" + dir_.string() + "' && '" + *iasl_ + "' -p recompiled dsdt.dsl");
  EXPECT_EQ(compile.exit_code, 0) << compile.output;
  EXPECT_NE(compile.output.find("0 Errors"), std::string::npos) << compile.output;
}

TEST_F(IaslTest, VirtioMmioDevicesDisassembleAndRecompile) {
  AcpiConfig config;
  config.virtio_mmio = {{0xfe000000, 0x1000, 5}, {0xfe001000, 0x1000, 6}};
  const Disassembly dsdt = Disassemble("dsdt", BuildDsdt(config));
  ASSERT_EQ(dsdt.exit_code, 0) << dsdt.output;
  EXPECT_TRUE(Clean(dsdt.output)) << dsdt.output;
  for (const char* text :
       {"Device (VR00)", "Device (VR01)", "Name (_HID, \"LNRO0005\")", "0xFE000000,", "0xFE001000,",
        "0x00001000,", "IRQNoFlags ()", "{5}", "{6}"}) {
    EXPECT_TRUE(HasField(dsdt.dsl, text)) << text << "\n" << dsdt.dsl;
  }
  const RunResult compile =
      RunShell("cd '" + dir_.string() + "' && '" + *iasl_ + "' -p recompiled dsdt.dsl");
  EXPECT_EQ(compile.exit_code, 0) << compile.output;
}

TEST_F(IaslTest, McfgDecodesCleanly) {
  const Disassembly mcfg = Disassemble("mcfg", BuildMcfg(0xe0000000, 0, 0));
  ASSERT_EQ(mcfg.exit_code, 0) << mcfg.output;
  EXPECT_TRUE(Clean(mcfg.output)) << mcfg.output;
  for (const char* line :
       {"Signature : \"MCFG\"", "Base Address : 00000000E0000000", "Segment Group Number : 0000",
        "Start Bus Number : 00", "End Bus Number : 00"}) {
    EXPECT_TRUE(HasField(mcfg.dsl, line)) << line << "\n" << mcfg.dsl;
  }
}

TEST_F(IaslTest, HpetTableDecodesAndHpetDeviceRecompiles) {
  const Disassembly hpet = Disassemble("hpet", BuildHpet(0xfed00000, 0x8086a201));
  ASSERT_EQ(hpet.exit_code, 0) << hpet.output;
  EXPECT_TRUE(Clean(hpet.output)) << hpet.output;
  for (const char* line :
       {"Signature : \"HPET\"", "Hardware Block ID : 8086A201", "Space ID : 00 [SystemMemory]",
        "Address : 00000000FED00000", "Sequence Number : 00", "Minimum Clock Ticks : 0080"}) {
    EXPECT_TRUE(HasField(hpet.dsl, line)) << line << "\n" << hpet.dsl;
  }

  AcpiConfig config;
  config.hpet = true;
  const Disassembly dsdt = Disassemble("dsdt", BuildDsdt(config));
  ASSERT_EQ(dsdt.exit_code, 0) << dsdt.output;
  EXPECT_TRUE(Clean(dsdt.output)) << dsdt.output;
  for (const char* text : {"Device (HPET)", "EisaId (\"PNP0103\")", "Memory32Fixed (ReadOnly,",
                           "0xFED00000,", "0x00000400,"}) {
    EXPECT_TRUE(HasField(dsdt.dsl, text)) << text << "\n" << dsdt.dsl;
  }
  const RunResult compile =
      RunShell("cd '" + dir_.string() + "' && '" + *iasl_ + "' -p recompiled dsdt.dsl");
  EXPECT_EQ(compile.exit_code, 0) << compile.output;
}

// ACPICA's table parser checks lengths and checksums of data tables and decodes every
// field by name, an independent reading of the offsets the builders use.
TEST_F(IaslTest, FadtAndMadtDecodeCleanly) {
  AcpiConfig config;
  config.cpus = 2;
  config.ioapic_id = 2;
  const Disassembly fadt = Disassemble("facp", BuildFadt(config, 0xe1000, 0xe0040));
  ASSERT_EQ(fadt.exit_code, 0) << fadt.output;
  EXPECT_TRUE(Clean(fadt.output)) << fadt.output;
  for (const char* line : {"Revision : 06", "SCI Interrupt : 0009", "PM1 Event Block Length : 04",
                           "PM1 Control Block Length : 02", "Control Method Power Button (V1) : 1",
                           "Reset Register Supported (V2) : 1", "Hardware Reduced (V5) : 0",
                           "Value to cause reset : 06", "Address : 0000000000000CF9"}) {
    EXPECT_TRUE(HasField(fadt.dsl, line)) << line << "\n" << fadt.dsl;
  }

  const Disassembly madt = Disassemble("apic", BuildMadt(config));
  ASSERT_EQ(madt.exit_code, 0) << madt.output;
  EXPECT_TRUE(Clean(madt.output)) << madt.output;
  for (const char* line : {"Local Apic Address : FEE00000", "PC-AT Compatibility : 1",
                           "I/O Apic ID : 02", "Interrupt Input LINT : 01"}) {
    EXPECT_TRUE(HasField(madt.dsl, line)) << line << "\n" << madt.dsl;
  }
}

}  // namespace
}  // namespace vireo::x86::acpi
