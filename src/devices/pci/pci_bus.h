// PciBus: PCI bus 0 (PCI Local Bus 3.0 §3.2.2.3): 32 device slots, function 0 of each,
// slot 0 holding the host bridge. The two configuration mechanisms (config_access.h)
// both end here, so port 0xCF8/0xCFC and ECAM accesses see the same registers.
//
// It plays the firmware's part at AddDevice: assigns every BAR a naturally aligned
// address from its window and enables decoding. After that the guest owns the BARs: on
// every configuration write to a Command register or a BAR, the bus re-reads the
// function's BARs, moves its routes in the PciBarRouters, and tells the device
// (PciDevice::BarMoved) what changed.
//
// Unclaimed slots and functions read all ones (a master abort, §6.1); malformed
// accesses (odd widths, crossing a dword, past 4 KiB) read all ones, are dropped on
// write, and are counted (rule 2).
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "base/result.h"
#include "devices/pci/bar_allocator.h"
#include "devices/pci/bar_router.h"
#include "devices/pci/pci_device.h"

namespace vireo::pci {

// A BAR window [start, end).
struct BarWindow {
  uint64_t start = 0;
  uint64_t end = 0;
};

// I/O BARs: ports 0xc000-0xffff, above every legacy port Vireo emulates and inside the
// host bridge's WordIO window (0x0d00-0xffff) in the DSDT.
inline constexpr BarWindow kDefaultIoWindow{0xc000, 0x10000};

class PciBus {
 public:
  static constexpr int kDevices = 32;   // §3.2.2.3.2: 5-bit device number
  static constexpr int kFunctions = 8;  // 3-bit function number; only function 0 is used
  static constexpr int kHostBridgeSlot = 0;

  // Memory BARs (32- and 64-bit) come from `mmio`, I/O BARs from `io`. The VMM inserts
  // mmio_router() on the MMIO bus over exactly `mmio`, and io_router() on the port bus
  // over `io`. Slot 0 gets a HostBridge.
  PciBus(BarWindow mmio, BarWindow io = kDefaultIoWindow);

  std::shared_ptr<PciBarRouter> mmio_router() const { return mmio_router_; }
  std::shared_ptr<PciBarRouter> io_router() const { return io_router_; }

  // Plugs `device` into the lowest free slot (or `slot`), assigns its BARs and enables
  // Memory/I/O Space decoding, as firmware would. Returns the slot. Errors (bus full,
  // slot taken, window exhausted) are configuration errors.
  Result<int> AddDevice(std::shared_ptr<PciDevice> device);
  Result<int> AddDevice(std::shared_ptr<PciDevice> device, int slot);

  // Configuration access to bus 0. `offset` is the register within the function's 4 KiB
  // space; `data` must be 1, 2 or 4 bytes inside one aligned dword.
  void ConfigRead(int device, int function, uint64_t offset, std::span<uint8_t> data);
  void ConfigWrite(int device, int function, uint64_t offset, std::span<const uint8_t> data);

  // After a function's configuration space was restored from a snapshot: re-reads its
  // Command register and BARs, moves its routes and tells it (BarMoved), as after a guest
  // write. A slot with no device is ignored.
  void RefreshBars(int slot);

  uint64_t bad_config_accesses() const { return bad_accesses_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::shared_ptr<PciDevice> device;
    std::array<uint64_t, kBarCount> mapped;  // effective address per BAR, or kBarUnmapped
  };

  // The device in `device`/`function`, or nullptr (an empty slot; bad access counted).
  PciDevice* Lookup(int device, int function, uint64_t offset, size_t size);
  Result<int> AddLocked(std::shared_ptr<PciDevice> device, int slot);
  // Re-reads the function's Command register and BARs; moves routes and notifies.
  void UpdateBars(int slot);
  Status AssignBars(PciDevice& device);

  std::shared_ptr<PciBarRouter> mmio_router_;
  std::shared_ptr<PciBarRouter> io_router_;
  std::mutex mutex_;
  BarAllocator mmio_allocator_;         // guarded by mutex_
  BarAllocator io_allocator_;           // guarded by mutex_
  std::array<Slot, kDevices> slots_{};  // guarded by mutex_
  std::atomic<uint64_t> bad_accesses_{0};
};

}  // namespace vireo::pci
