#include "virtio/pci_transport.h"

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>

#include <fmt/format.h>

#include "base/bytes.h"
#include "virtio/pci_common_cfg.h"

namespace vireo::virtio {
namespace {

constexpr uint64_t kPage = 0x1000;
constexpr uint16_t kMaxQueues = pci::msix::kMaxVectors - 1;  // one vector per queue + config

uint64_t RoundUp(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

// A broken VMM invariant (rule 2): the device model or this file is wrong, not the guest.
[[noreturn]] void Die(std::string_view what) {
  fmt::print(stderr, "vireo: virtio-pci: {}\n", what);
  std::abort();
}

uint16_t CheckedQueueCount(const VirtioDevice& device) {
  const uint16_t queues = device.num_queues();
  if (queues == 0 || queues > kMaxQueues) Die(fmt::format("{}: {} queues", device.name(), queues));
  return queues;
}

// PCI class code by device type (5 "Device Types"), as other VMMs present them.
pci::PciIds IdsFor(uint32_t device_type) {
  pci::PciIds ids{.vendor_id = PciTransport::kVendorId,
                  .device_id = static_cast<uint16_t>(PciTransport::kDeviceIdBase + device_type),
                  .revision_id = PciTransport::kRevision,
                  .class_code = 0xff,  // "device does not fit any defined class"
                  .subsystem_vendor_id = PciTransport::kVendorId,
                  .subsystem_id = PciTransport::kSubsystemId};
  switch (device_type) {
    case 1:  // network: Ethernet controller
      ids.class_code = 0x02;
      break;
    case 2:  // block: SCSI storage controller
      ids.class_code = 0x01;
      break;
    case kDeviceIdConsole:  // communication: other
      ids.class_code = 0x07;
      ids.subclass = 0x80;
      break;
    default:
      break;
  }
  return ids;
}

bool Overlaps(uint64_t offset, size_t size, uint64_t start, uint64_t length) {
  return offset < start + length && start < offset + size;
}

}  // namespace

PciTransport::PciTransport(const GuestMemory& memory, std::shared_ptr<VirtioDevice> device,
                           pci::MsiSink& sink)
    : memory_(memory),
      device_(std::move(device)),
      offered_features_((device_->device_features() & kDeviceFeatureMask) | kTransportFeatures),
      name_(fmt::format("virtio-pci-{}", device_->name())),
      num_queues_(CheckedQueueCount(*device_)),
      notify_length_(uint64_t{num_queues_} * kNotifyOffMultiplier),
      msix_table_offset_(kNotifyOffset + RoundUp(notify_length_, kPage)),
      msix_pba_offset_(msix_table_offset_ +
                       RoundUp((num_queues_ + uint64_t{1}) * pci::msix::kEntrySize, kPage)),
      bar_size_(std::bit_ceil(msix_pba_offset_ + kPage)),  // the PBA of <= 2048 bits
      queue_vectors_(new std::atomic<uint16_t>[num_queues_]),
      config_(IdsFor(device_->device_type())) {
  for (uint16_t q = 0; q < num_queues_; ++q) queue_vectors_[q].store(kNoVector);
  queues_.reserve(num_queues_);
  for (uint16_t q = 0; q < num_queues_; ++q) queues_.emplace_back(device_->max_queue_size());

  // 4.1.4: one 64-bit memory BAR (4.1.4.1: "any BAR"; BAR 4 as QEMU and others use).
  if (auto added =
          config_.AddBar({.index = kBar, .size = bar_size_, .type = pci::BarType::kMemory64});
      !added) {
    Die(added.error().message);
  }
  AddVirtioCapability(pci_cap::kCommonCfg, pci_cap::kSize, kCommonCfgOffset, common_cfg::kSize);
  AddVirtioCapability(pci_cap::kNotifyCfg, pci_cap::kNotifyCapSize, kNotifyOffset, notify_length_);
  AddVirtioCapability(pci_cap::kIsrCfg, pci_cap::kSize, kIsrOffset, kIsrLength);
  AddVirtioCapability(pci_cap::kDeviceCfg, pci_cap::kSize, kDeviceCfgOffset, kDeviceCfgLength);
  AddVirtioCapability(pci_cap::kPciCfg, pci_cap::kPciCfgCapSize, 0, 0);
  const pci::Msix::Location table{kBar, static_cast<uint32_t>(msix_table_offset_)};
  const pci::Msix::Location pba{kBar, static_cast<uint32_t>(msix_pba_offset_)};
  auto msix = pci::Msix::Create(config_, static_cast<uint16_t>(num_queues_ + 1), table, pba, sink);
  if (!msix) Die(msix.error().message);
  msix_ = std::move(*msix);
}

PciTransport::~PciTransport() {
  // The device may hold pointers to our queues and interrupt: make it drop them.
  device_->Reset();
}

void PciTransport::AddVirtioCapability(uint8_t cfg_type, uint8_t length, uint64_t offset,
                                       uint64_t size) {
  auto at = config_.AddCapability(pci::capability_id::kVendorSpecific, length);
  if (!at) Die(at.error().message);
  config_.Set8(*at + pci_cap::kCapLen, length);
  config_.Set8(*at + pci_cap::kCfgType, cfg_type);
  config_.Set32(*at + pci_cap::kOffset, static_cast<uint32_t>(offset));
  config_.Set32(*at + pci_cap::kLength, static_cast<uint32_t>(size));
  if (cfg_type == pci_cap::kNotifyCfg) {
    config_.Set32(*at + pci_cap::kNotifyOffMultiplier, kNotifyOffMultiplier);
  }
  if (cfg_type == pci_cap::kPciCfg) {
    // 4.1.4.9: cap.bar, cap.offset, cap.length and pci_cfg_data are RW for the driver.
    pci_cfg_cap_ = *at;
    config_.SetMasks(*at + pci_cap::kBar, 1, 0xff);
    config_.SetMasks(*at + pci_cap::kOffset, 4, 0xffffffff);
    config_.SetMasks(*at + pci_cap::kLength, 4, 0xffffffff);
    config_.SetMasks(*at + pci_cap::kPciCfgData, 4, 0xffffffff);
  } else {
    config_.Set8(*at + pci_cap::kBar, kBar);
  }
}

std::string_view PciTransport::name() const { return name_; }

PciCounters PciTransport::counters() const {
  std::lock_guard lock(mu_);
  PciCounters counters = counters_;
  counters.refused_status = status_.refused_writes();
  counters.early_notifications = status_.early_notifications();
  counters.bad_vectors = bad_vectors_.load(std::memory_order_relaxed);
  counters.interrupts = interrupts_.load(std::memory_order_relaxed);
  counters.pending_interrupts = pending_interrupts_.load(std::memory_order_relaxed);
  counters.unmapped_interrupts = unmapped_interrupts_.load(std::memory_order_relaxed);
  counters.lost_interrupts = lost_interrupts_.load(std::memory_order_relaxed);
  return counters;
}

// ---- Configuration space, and the VIRTIO_PCI_CAP_PCI_CFG window (4.1.4.9). ----

std::optional<PciTransport::Window> PciTransport::WindowLocked() {
  // 4.1.4.9.2: the driver sets a BAR the device has, a length of 1, 2 or 4 and an offset
  // aligned to it; anything else does nothing.
  const uint8_t bar = config_.Get8(pci_cfg_cap_ + pci_cap::kBar);
  const uint32_t offset = config_.Get32(pci_cfg_cap_ + pci_cap::kOffset);
  const uint32_t length = config_.Get32(pci_cfg_cap_ + pci_cap::kLength);
  if (bar != kBar || (length != 1 && length != 2 && length != 4) || offset % length != 0 ||
      !RangeFits(offset, length, bar_size_)) {
    counters_.bad_window++;
    return std::nullopt;
  }
  return Window{offset, length};
}

void PciTransport::ConfigRead(uint16_t offset, std::span<uint8_t> data) {
  std::optional<Window> window;
  {
    std::lock_guard lock(mu_);
    if (Overlaps(offset, data.size(), pci_cfg_cap_ + pci_cap::kPciCfgData, 4)) {
      window = WindowLocked();
    }
  }
  if (window) {
    // 4.1.4.9.1: read cap.length bytes at cap.offset and store them in pci_cfg_data.
    uint8_t bytes[4] = {};
    BarRead(window->offset, std::span(bytes, window->length));
    std::lock_guard lock(mu_);
    config_.SetBytes(pci_cfg_cap_ + pci_cap::kPciCfgData, std::span(bytes, window->length));
  }
  std::lock_guard lock(mu_);
  config_.Read(offset, data);
}

void PciTransport::ConfigWrite(uint16_t offset, std::span<const uint8_t> data) {
  std::optional<Window> window;
  uint8_t bytes[4] = {};
  {
    std::lock_guard lock(mu_);
    config_.Write(offset, data);
    msix_->ConfigWritten(config_);  // MSI-X Enable / Function Mask may have changed
    if (Overlaps(offset, data.size(), pci_cfg_cap_ + pci_cap::kPciCfgData, 4)) {
      window = WindowLocked();
      config_.Read(pci_cfg_cap_ + pci_cap::kPciCfgData, bytes);
    }
  }
  // 4.1.4.9.1: write the first cap.length bytes of pci_cfg_data at cap.offset.
  if (window) BarWrite(window->offset, std::span<const uint8_t>(bytes, window->length));
}

std::span<const pci::BarDefinition> PciTransport::bars() const {
  // Declared once in the constructor and never changed: no lock needed.
  return config_.bars();
}

BusDevice* PciTransport::bar_device(int bar) { return bar == kBar ? &bar_handler_ : nullptr; }

void PciTransport::BarMoved(int bar, uint64_t old_address, uint64_t new_address) {
  if (bar != kBar) return;
  bar_address_.store(new_address, std::memory_order_release);
  NotifyAddressListener listener;
  {
    std::lock_guard lock(mu_);
    listener = listener_;
  }
  if (!listener) return;
  auto at = [](uint64_t base, uint16_t queue) -> std::optional<uint64_t> {
    if (base == pci::kBarUnmapped) return std::nullopt;
    return base + kNotifyOffset + uint64_t{queue} * kNotifyOffMultiplier;
  };
  for (uint16_t q = 0; q < num_queues_; ++q) listener(q, at(old_address, q), at(new_address, q));
}

std::optional<uint64_t> PciTransport::notify_address(uint16_t queue) const {
  const uint64_t base = bar_address_.load(std::memory_order_acquire);
  if (base == pci::kBarUnmapped || queue >= num_queues_) return std::nullopt;
  return base + kNotifyOffset + uint64_t{queue} * kNotifyOffMultiplier;
}

void PciTransport::SetNotifyAddressListener(NotifyAddressListener listener) {
  std::lock_guard lock(mu_);
  listener_ = std::move(listener);
}

// ---- BAR 4. ----

void PciTransport::BarHandler::Read(uint64_t offset, std::span<uint8_t> data) {
  transport_.BarRead(offset, data);
}

void PciTransport::BarHandler::Write(uint64_t offset, std::span<const uint8_t> data) {
  transport_.BarWrite(offset, data);
}

void PciTransport::BarRead(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  const size_t size = data.size();
  if (offset >= msix_table_offset_ && offset - msix_table_offset_ < msix_->table_size()) {
    return msix_->TableRead(offset - msix_table_offset_, data);
  }
  if (offset >= msix_pba_offset_ && offset - msix_pba_offset_ < msix_->pba_size()) {
    return msix_->PbaRead(offset - msix_pba_offset_, data);
  }
  std::lock_guard lock(mu_);
  if (offset < kCommonCfgOffset + common_cfg::kSize) return CommonRead(offset, data);
  if (offset >= kIsrOffset && offset < kIsrOffset + kIsrLength) {
    // 4.1.4.5: an 8-bit read returns the bits and clears them.
    if (size != 1) {
      counters_.bad_access_size++;
      return;
    }
    data[0] = isr_.exchange(0, std::memory_order_acq_rel);
    return;
  }
  if (offset >= kDeviceCfgOffset && offset < kDeviceCfgOffset + kDeviceCfgLength) {
    if (!RangeFits(offset - kDeviceCfgOffset, size, kDeviceCfgLength) ||
        !device_->ReadConfig(offset - kDeviceCfgOffset, data)) {
      counters_.bad_config_access++;
    }
    return;
  }
  counters_.bad_register++;  // notify addresses are write-only; the rest are holes
}

void PciTransport::BarWrite(uint64_t offset, std::span<const uint8_t> data) {
  const size_t size = data.size();
  if (offset >= msix_table_offset_ && offset - msix_table_offset_ < msix_->table_size()) {
    return msix_->TableWrite(offset - msix_table_offset_, data);
  }
  if (offset >= msix_pba_offset_ && offset - msix_pba_offset_ < msix_->pba_size()) {
    return msix_->PbaWrite(offset - msix_pba_offset_, data);
  }
  if (offset >= kNotifyOffset && offset - kNotifyOffset < notify_length_) {
    // 4.1.4.4: the driver writes the 16-bit queue index at the queue's address (32 bits
    // with VIRTIO_F_NOTIFICATION_DATA, accepted too). The address names the queue.
    const uint64_t relative = offset - kNotifyOffset;
    if ((size != 2 && size != 4) || relative % kNotifyOffMultiplier != 0) {
      std::lock_guard lock(mu_);
      counters_.bad_access_size++;
      return;
    }
    return NotifyQueue(static_cast<uint16_t>(relative / kNotifyOffMultiplier));
  }
  std::lock_guard lock(mu_);
  if (offset < kCommonCfgOffset + common_cfg::kSize) return CommonWrite(offset, data);
  if (offset >= kDeviceCfgOffset && offset < kDeviceCfgOffset + kDeviceCfgLength) {
    if (!RangeFits(offset - kDeviceCfgOffset, size, kDeviceCfgLength) ||
        !device_->WriteConfig(offset - kDeviceCfgOffset, data)) {
      counters_.bad_config_access++;
    }
    return;
  }
  counters_.bad_register++;  // ISR is read-only; the rest are holes
}

void PciTransport::NotifyQueue(uint16_t queue) {
  {
    std::lock_guard lock(mu_);
    if (!status_.AcceptNotification()) return;
    if (queue >= num_queues_) {
      counters_.bad_notifications++;
      return;
    }
    counters_.notifications++;
  }
  // Outside the lock: the device guards itself and drops notifications while inactive.
  device_->QueueNotify(queue);
}

void PciTransport::NotifyAllQueues() {
  for (uint16_t q = 0; q < num_queues_; ++q) NotifyQueue(q);
}

// ---- Interrupts (4.1.5.1.2 "MSI-X Vector Configuration", 4.1.4.5 ISR). ----

void PciTransport::Raise(uint8_t isr_bits, uint16_t vector) {
  isr_.fetch_or(isr_bits, std::memory_order_acq_rel);
  switch (msix_->Notify(vector)) {
    case pci::MsixNotify::kSent:
      interrupts_.fetch_add(1, std::memory_order_relaxed);
      return;
    case pci::MsixNotify::kPending:
      pending_interrupts_.fetch_add(1, std::memory_order_relaxed);
      return;
    case pci::MsixNotify::kDisabled:
      // No INTx: Vireo's host bridge has no _PRT to route one. The ISR bit stays set.
      lost_interrupts_.fetch_add(1, std::memory_order_relaxed);
      return;
    case pci::MsixNotify::kBadVector:
      unmapped_interrupts_.fetch_add(1, std::memory_order_relaxed);
      return;
  }
}

void PciTransport::Interrupt::SignalUsed(uint16_t queue_index) {
  const uint16_t vector = queue_index < transport_.num_queues_
                              ? transport_.queue_vectors_[queue_index].load()
                              : kNoVector;
  transport_.Raise(kIsrQueue, vector);
}

void PciTransport::Interrupt::SignalConfigChange() {
  transport_.config_generation_.fetch_add(1, std::memory_order_acq_rel);
  transport_.Raise(kIsrConfig, transport_.msix_config_.load());
}

}  // namespace vireo::virtio
