// PciDevice: what the PCI bus needs from one function on it (rule 5: a narrow interface).
//
// The bus (pci_bus.h) owns the configuration mechanisms (0xCF8/0xCFC, ECAM) and BAR
// routing; a device only answers configuration reads and writes, says which BARs it
// has, hands out the BusDevice that serves each BAR, and hears when a BAR moves.
// Everything is called with the PciBus's lock held, from vCPU threads (config access)
// or the VMM's set-up thread (AddDevice): implementations lock their own state and must
// not call back into the PciBus.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "devices/bus_device.h"

namespace vireo::pci {

// PCI Local Bus 3.0 §6.2.5.1: the three kinds of Base Address Register.
enum class BarType : uint8_t {
  kIo,        // bit 0 = 1: I/O space, at most 256 bytes
  kMemory32,  // bits 2:1 = 00: anywhere in 32-bit memory space
  kMemory64,  // bits 2:1 = 10: 64-bit, takes this BAR and the next
};

inline constexpr int kBarCount = 6;  // type 0 header: BAR0-BAR5 at 0x10-0x27

struct BarDefinition {
  int index = 0;      // 0..5; a 64-bit BAR also occupies index + 1
  uint64_t size = 0;  // a power of two: memory >= 16 bytes, I/O 4..256 bytes
  BarType type = BarType::kMemory32;
  bool prefetchable = false;  // memory BARs only (bit 3)
};

// What a BAR decodes to while it is unmapped: decoding is off in the Command register,
// or the address is 0 or does not fit its address space (a BAR mid-sizing reads e.g.
// 0xfffff000, which is not a place to map anything).
inline constexpr uint64_t kBarUnmapped = ~uint64_t{0};

class PciDevice {
 public:
  virtual ~PciDevice() = default;
  virtual std::string_view name() const = 0;

  // Configuration space access. The bus guarantees offset < 4096 and 1, 2 or 4 bytes
  // that stay inside one aligned dword; a device should still cope with anything.
  virtual void ConfigRead(uint16_t offset, std::span<uint8_t> data) = 0;
  virtual void ConfigWrite(uint16_t offset, std::span<const uint8_t> data) = 0;

  // The BARs this function implements; the bus allocates their addresses at AddDevice
  // and reads their current values back from configuration space.
  virtual std::span<const BarDefinition> bars() const = 0;

  // The handler for accesses inside BAR `bar` (offsets relative to the BAR's start), or
  // nullptr for a BAR the function does not implement. Must stay valid while the device
  // lives.
  virtual BusDevice* bar_device(int bar) = 0;

  // The BAR's effective address changed from `old_address` to `new_address` (either may
  // be kBarUnmapped): the guest reprogrammed it, or toggled decoding in the Command
  // register. The VMM re-maps what it keyed on the address (ioeventfds) from here.
  virtual void BarMoved(int bar, uint64_t old_address, uint64_t new_address) = 0;
};

}  // namespace vireo::pci
