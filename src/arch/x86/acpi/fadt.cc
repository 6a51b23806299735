// §5.2.9 Fixed ACPI Description Table (FADT), revision 6; and the
// §5.2.10 FACS it points to, which a platform that is not hardware-reduced must have.
//
// Vireo's platform is a classic PC without SMM: ACPI mode is always on (SMI_CMD = 0,
// SCI_EN hard-wired to 1), the PM1a event and control blocks are the only fixed
// registers, there is no PM timer, no GPE block and no fixed power or sleep button,
// and reboot goes through the reset register.
#include "arch/x86/acpi/sdt.h"
#include "arch/x86/acpi/tables.h"
#include "base/bytes.h"

namespace vireo::x86::acpi {
namespace {

// Field offsets from §5.2.9 "FADT Format". Only the fields Vireo sets are named; the rest stay
// zero.
namespace field {
constexpr size_t kFirmwareCtrl = 36;         // 4: FACS address
constexpr size_t kDsdt = 40;                 // 4
constexpr size_t kSciInt = 46;               // 2
constexpr size_t kSmiCmd = 48;               // 4: zero = no SMM, ACPI always enabled
constexpr size_t kPm1aEvtBlk = 56;           // 4
constexpr size_t kPm1aCntBlk = 64;           // 4
constexpr size_t kPmTmrBlk = 76;             // 4
constexpr size_t kPm1EvtLen = 88;            // 1
constexpr size_t kPm1CntLen = 89;            // 1
constexpr size_t kPmTmrLen = 91;             // 1
constexpr size_t kIapcBootArch = 109;        // 2
constexpr size_t kFlags = 112;               // 4
constexpr size_t kResetReg = 116;            // 12: GAS
constexpr size_t kResetValue = 128;          // 1
constexpr size_t kMinorVersion = 131;        // 1
constexpr size_t kXDsdt = 140;               // 8
constexpr size_t kXPm1aEvtBlk = 148;         // 12: GAS
constexpr size_t kXPm1aCntBlk = 172;         // 12: GAS
constexpr size_t kHypervisorVendorId = 268;  // 8
}  // namespace field

constexpr uint8_t kFadtRevision = 6;
constexpr uint8_t kFadtMinorVersion = 4;  // ACPI 6.4

// §5.2.9.3 IA-PC Boot Architecture Flags.
constexpr uint16_t kBootArchLegacyDevices = 1 << 0;  // ISA devices the OS cannot enumerate
constexpr uint16_t kBootArch8042 = 1 << 1;           // i8042 keyboard controller at 0x60/0x64

// §5.2.9 "Fixed ACPI Description Table Fixed Feature Flags".
constexpr uint32_t kFlagWbinvd = 1 << 0;  // WBINVD flushes caches correctly (always on x86)
// PWR_BUTTON / SLP_BUTTON: 1 means "no fixed-feature button: a control-method button
// device, or none". Vireo has neither kind, and the flag table says a platform without the
// button sets the bit so the OS does not enable PWRBTN_EN / SLPBTN_EN.
constexpr uint32_t kFlagPwrButton = 1 << 4;
constexpr uint32_t kFlagSlpButton = 1 << 5;
constexpr uint32_t kFlagResetRegSup = 1 << 10;  // RESET_REG and RESET_VALUE are valid

// §5.2.10 FACS field offsets.
namespace facs_field {
constexpr size_t kSignature = 0;
constexpr size_t kLength = 4;
constexpr size_t kVersion = 32;
}  // namespace facs_field
constexpr uint8_t kFacsVersion = 2;

}  // namespace

std::vector<uint8_t> BuildFacs() {
  // Zero hardware signature, waking vectors and global lock: Vireo offers no S1-S4,
  // so nothing is ever woken.
  std::vector<uint8_t> facs(kFacsSize);
  PutText(facs, facs_field::kSignature, "FACS", 4);
  StoreLe<uint32_t>(facs, facs_field::kLength, kFacsSize);
  facs[facs_field::kVersion] = kFacsVersion;
  return facs;
}

std::vector<uint8_t> BuildFadt(const AcpiConfig& config, GuestAddress dsdt, GuestAddress facs) {
  std::vector<uint8_t> fadt = NewTable("FACP", kFadtRevision, "VIREOFAC", kFadtSize);
  fadt[field::kMinorVersion] = kFadtMinorVersion;

  // §5.2.9: FIRMWARE_CTRL and X_FIRMWARE_CTRL are exclusive (one must be zero); the
  // FACS sits below 4 GiB so the 32-bit field carries it. The DSDT goes in both,
  // equal, which every OS accepts (X_DSDT wins when they differ).
  StoreLe<uint32_t>(fadt, field::kFirmwareCtrl, static_cast<uint32_t>(facs));
  StoreLe<uint32_t>(fadt, field::kDsdt, static_cast<uint32_t>(dsdt));
  StoreLe<uint64_t>(fadt, field::kXDsdt, dsdt);

  StoreLe<uint16_t>(fadt, field::kSciInt, config.sci_irq);
  StoreLe<uint32_t>(fadt, field::kSmiCmd, 0);

  // PM1a event block: PM1_STS then PM1_EN; control block: PM1_CNT (§4.8.3.1-2). The
  // legacy port fields and the X_ GAS fields say the same; OSes read either.
  const uint16_t pm1a_evt = config.pm_base;
  const uint16_t pm1a_cnt = config.pm_base + kPm1EventLength;
  StoreLe<uint32_t>(fadt, field::kPm1aEvtBlk, pm1a_evt);
  StoreLe<uint32_t>(fadt, field::kPm1aCntBlk, pm1a_cnt);
  fadt[field::kPm1EvtLen] = kPm1EventLength;
  fadt[field::kPm1CntLen] = kPm1ControlLength;
  // PM1 registers are 16 bits wide (§4.8.3): word accesses.
  PutGenericAddress(fadt, field::kXPm1aEvtBlk,
                    {AddressSpace::kSystemIo, kPm1EventLength * 8, 0, AccessSize::kWord, pm1a_evt});
  PutGenericAddress(
      fadt, field::kXPm1aCntBlk,
      {AddressSpace::kSystemIo, kPm1ControlLength * 8, 0, AccessSize::kWord, pm1a_cnt});

  // No PM timer: both fields zero tell the OS to use another clock source.
  StoreLe<uint32_t>(fadt, field::kPmTmrBlk, 0);
  fadt[field::kPmTmrLen] = 0;

  StoreLe<uint16_t>(fadt, field::kIapcBootArch, kBootArchLegacyDevices | kBootArch8042);
  StoreLe<uint32_t>(fadt, field::kFlags,
                    kFlagWbinvd | kFlagPwrButton | kFlagSlpButton | kFlagResetRegSup);

  // §4.8.3.6 Reset Register: an 8-bit I/O port; writing RESET_VALUE resets the system.
  PutGenericAddress(fadt, field::kResetReg,
                    {AddressSpace::kSystemIo, 8, 0, AccessSize::kByte, config.reset_port});
  fadt[field::kResetValue] = config.reset_value;

  PutText(fadt, field::kHypervisorVendorId, "VIREO", 8);
  FinishTable(fadt);
  return fadt;
}

}  // namespace vireo::x86::acpi
