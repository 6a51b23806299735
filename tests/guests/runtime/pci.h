// PCI configuration access and bus-0 enumeration (PCI Local Bus 3.0 chapter 6, PCI Express 4.0
// section 7.2.2 for ECAM, PCI Firmware 3.2 section 4.1.2 for the ACPI MCFG table).
//
// Configuration space is reached through ECAM (memory-mapped, 4 KiB per function) or the legacy
// mechanism #1 ports (0xCF8 address, 0xCFC data; first 256 bytes only). Init picks one:
// "pci.config=ecam|io" on the cmdline forces it; otherwise ECAM at the MCFG table's base for
// segment 0 bus 0 (Vireo: 0xe0000000, QEMU q35: 0xb0000000), then ECAM at Vireo's fixed
// 0xe0000000, then the ports, taking the first whose 00:00.0 answers.
#pragma once

#include <stdint.h>

#include "boot_info.h"

namespace rt::pci {

// Type-0 header registers (PCI 3.0 section 6.1).
inline constexpr uint16_t kVendorId = 0x00;
inline constexpr uint16_t kDeviceId = 0x02;
inline constexpr uint16_t kCommand = 0x04;
inline constexpr uint16_t kStatus = 0x06;
inline constexpr uint16_t kClassRevision = 0x08;
inline constexpr uint16_t kHeaderType = 0x0e;
inline constexpr uint16_t kBar0 = 0x10;
inline constexpr uint16_t kSubsystemId = 0x2e;
inline constexpr uint16_t kCapabilitiesPointer = 0x34;
inline constexpr uint16_t kInterruptLine = 0x3c;

inline constexpr uint16_t kCommandIo = 1 << 0;
inline constexpr uint16_t kCommandMemory = 1 << 1;
inline constexpr uint16_t kCommandBusMaster = 1 << 2;
inline constexpr uint16_t kCommandIntxDisable = 1 << 10;
inline constexpr uint16_t kStatusCapabilities = 1 << 4;

// Capability IDs (PCI Code and ID Assignment 1.11 section 2).
inline constexpr uint8_t kCapMsix = 0x11;
inline constexpr uint8_t kCapVendor = 0x09;

enum class Access : uint8_t { kNone, kEcam, kPorts };

struct Address {
  uint8_t bus;
  uint8_t dev;  // 0..31
  uint8_t fn;   // 0..7
};

// Chooses the configuration mechanism (see the header comment) and prints it. False if no
// mechanism finds a function at 00:00.0.
bool Init(const BootInfo& info);
Access CurrentAccess();
uint64_t EcamBase();  // 0 unless the access is ECAM
// The ECAM base the MCFG table gives for segment 0 bus 0; 0 without ACPI or MCFG.
uint64_t McfgEcamBase();

// Naturally aligned reads and writes of 8, 16 or 32 bits at `off` (< 256 through the ports).
uint32_t Read32(Address a, uint16_t off);
uint16_t Read16(Address a, uint16_t off);
uint8_t Read8(Address a, uint16_t off);
void Write32(Address a, uint16_t off, uint32_t v);
void Write16(Address a, uint16_t off, uint16_t v);
void Write8(Address a, uint16_t off, uint8_t v);

struct Function {
  Address addr;
  uint16_t vendor;
  uint16_t device;
  uint32_t class_code;  // base class << 16 | subclass << 8 | prog-if
};

// Bus-0 functions (multi-function devices included), in order; returns how many were stored.
int EnumerateBus0(Function* out, int max);

// A base address register (PCI 3.0 section 6.2.5.1), sized by the all-ones probe.
struct Bar {
  uint64_t addr;  // 0: not assigned
  uint64_t size;  // 0: not implemented
  bool io;
  bool is64;  // occupies this BAR and the next
  bool prefetchable;
};
// Reads and sizes BAR `index` (0..5; the low half of a 64-bit pair). Decoding is turned off
// while sizing and restored after. False if the index is the high half of a 64-bit BAR.
bool ReadBar(Address a, int index, Bar& out);

// ReadBar, then makes the memory BAR usable by this identity-mapped guest: a BAR that is
// unassigned (0) or lies above 4 GiB gets an address from the 32-bit window [0xc0000000,
// 0xe0000000) above every BAR already assigned there (Vireo assigns BARs itself; firmware-less
// boots under other VMMs may not). Sets Memory Space and Bus Master in Command. False for an
// I/O or absent BAR, or when the window is full.
bool MapMemoryBar(Address a, int index, Bar& out);

// Offset of the first capability with `id` after `after` (0: from the list's head); 0 if none.
// The walk is bounded (48 entries, offsets 0x40..0xfc) so a looping list ends.
uint8_t FindCapability(Address a, uint8_t id, uint8_t after = 0);

}  // namespace rt::pci
