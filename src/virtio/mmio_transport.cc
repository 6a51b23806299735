#include "virtio/mmio_transport.h"

#include <algorithm>

#include <fmt/format.h>

#include "base/bytes.h"
#include "base/log.h"

namespace vireo::virtio {

MmioTransport::MmioTransport(const GuestMemory& memory, std::shared_ptr<VirtioDevice> device,
                             std::shared_ptr<InterruptLine> irq)
    : memory_(memory),
      device_(std::move(device)),
      irq_(std::move(irq)),
      offered_features_((device_->device_features() & kDeviceFeatureMask) | kTransportFeatures),
      name_(fmt::format("virtio-mmio-{}", device_->name())) {
  queues_.reserve(device_->num_queues());
  for (uint16_t i = 0; i < device_->num_queues(); ++i) {
    queues_.emplace_back(device_->max_queue_size());
  }
}

MmioTransport::~MmioTransport() {
  // The device may hold pointers to our queues and interrupt: make it drop them.
  device_->Reset();
}

std::string_view MmioTransport::name() const { return name_; }

MmioCounters MmioTransport::counters() const {
  std::lock_guard lock(mu_);
  MmioCounters counters = counters_;
  counters.refused_status = status_.refused_writes();
  counters.early_notifications = status_.early_notifications();
  counters.interrupts = interrupts_.load(std::memory_order_relaxed);
  return counters;
}

// ---- Interrupts (4.2.3.4 and 2.3). ----

void MmioTransport::Raise(uint32_t bits) {
  interrupt_status_.fetch_or(bits, std::memory_order_acq_rel);
  interrupts_.fetch_add(1, std::memory_order_relaxed);
  irq_->Pulse();
}

void MmioTransport::Interrupt::SignalUsed(uint16_t) { transport_.Raise(kInterruptUsedBuffer); }

void MmioTransport::Interrupt::SignalConfigChange() {
  transport_.config_generation_.fetch_add(1, std::memory_order_acq_rel);
  transport_.Raise(kInterruptConfigChange);
}

// ---- Bus access. ----

void MmioTransport::Read(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (offset >= kConfig) {
    std::lock_guard lock(mu_);
    if (!device_->ReadConfig(offset - kConfig, data)) counters_.bad_config_access++;
    return;
  }
  std::lock_guard lock(mu_);
  if (data.size() != 4 || offset % 4 != 0) {
    counters_.bad_access_size++;
    return;
  }
  StoreLe<uint32_t>(data, 0, ReadRegister(offset));
}

void MmioTransport::Write(uint64_t offset, std::span<const uint8_t> data) {
  if (offset >= kConfig) {
    std::lock_guard lock(mu_);
    if (!device_->WriteConfig(offset - kConfig, data)) counters_.bad_config_access++;
    return;
  }
  if (data.size() != 4 || offset % 4 != 0) {
    std::lock_guard lock(mu_);
    counters_.bad_access_size++;
    return;
  }
  uint32_t value = LoadLe<uint32_t>(data);
  if (offset == kQueueNotify) {
    NotifyQueue(value);  // takes the lock itself, and calls the device outside it
    return;
  }
  std::lock_guard lock(mu_);
  WriteRegister(offset, value);
}

Queue* MmioTransport::SelectedQueue() {
  return queue_sel_ < queues_.size() ? &queues_[queue_sel_] : nullptr;
}

uint32_t MmioTransport::ReadRegister(uint64_t offset) {
  switch (offset) {
    case kMagicValue:
      return kMagic;
    case kVersion:
      return kVersion2;
    case kDeviceId:
      return device_->device_type();
    case kVendorId:
      return kVendor;
    case kDeviceFeatures:
      // 4.2.2: DeviceFeaturesSel selects 32-bit words; beyond bit 63 nothing is offered.
      return device_features_sel_ < 2
                 ? static_cast<uint32_t>(offered_features_ >> (32 * device_features_sel_))
                 : 0;
    case kQueueNumMax:
      // 4.2.2: 0 when the queue is not available.
      return SelectedQueue() ? SelectedQueue()->max_size() : 0;
    case kQueueReady:
      return SelectedQueue() && SelectedQueue()->ready() ? 1 : 0;
    case kInterruptStatus:
      return interrupt_status_.load(std::memory_order_acquire);
    case kStatus:
      if (device_active_ && device_->needs_reset()) status_.SetNeedsReset();
      return status_.value();
    case kShmLenLow:
    case kShmLenHigh:
    case kShmBaseLow:
    case kShmBaseHigh:
      return 0xffffffff;  // 4.2.2: a non-existent region has length -1
    case kQueueReset:
      return 0;
    case kConfigGeneration:
      return config_generation_.load(std::memory_order_acquire);
    default:
      // Write-only registers and holes read 0.
      counters_.bad_register++;
      return 0;
  }
}

void MmioTransport::WriteRegister(uint64_t offset, uint32_t value) {
  switch (offset) {
    case kDeviceFeaturesSel:
      device_features_sel_ = value;
      return;
    case kDriverFeatures: {
      // 3.1.1 step 5: features are written before FEATURES_OK and not changed after.
      if (status_.features_ok() || driver_features_sel_ >= 2) {
        counters_.refused_writes++;
        return;
      }
      uint32_t shift = 32 * driver_features_sel_;
      driver_features_ =
          (driver_features_ & ~(0xffffffffull << shift)) | (uint64_t{value} << shift);
      return;
    }
    case kDriverFeaturesSel:
      driver_features_sel_ = value;
      return;
    case kQueueSel:
      queue_sel_ = value;
      return;
    case kQueueNum:
    case kQueueReady:
    case kQueueDescLow:
    case kQueueDescHigh:
    case kQueueDriverLow:
    case kQueueDriverHigh:
    case kQueueDeviceLow:
    case kQueueDeviceHigh:
      WriteQueueField(offset, value);
      return;
    case kInterruptAck:
      interrupt_status_.fetch_and(~value, std::memory_order_acq_rel);
      return;
    case kStatus:
      WriteStatus(value);
      return;
    case kShmSel:
    case kQueueReset:  // VIRTIO_F_RING_RESET is not offered
      return;
    default:
      counters_.bad_register++;
      return;
  }
}

void MmioTransport::WriteQueueField(uint64_t offset, uint32_t value) {
  Queue* queue = SelectedQueue();
  // 4.2.3.2: queues are set up before DRIVER_OK, and a ready queue is not changed.
  if (queue == nullptr || status_.Has(DeviceStatus::kDriverOk) ||
      (queue->ready() && !(offset == kQueueReady && value == 0))) {
    counters_.refused_writes++;
    return;
  }
  auto low = [](GuestAddress addr, uint32_t v) { return (addr & ~0xffffffffull) | v; };
  auto high = [](GuestAddress addr, uint32_t v) {
    return (addr & 0xffffffffull) | (uint64_t{v} << 32);
  };
  switch (offset) {
    case kQueueNum:
      // Queue sizes are u16; anything larger cannot be valid and Activate will say so.
      queue->set_size(value > 0xffff ? 0 : static_cast<uint16_t>(value));
      return;
    case kQueueReady:
      if (value == 0) {
        queue->Deactivate();
      } else if (auto status = queue->Activate(memory_); !status) {
        counters_.invalid_queues++;
        Log(LogLevel::kDebug, "{}: queue {}: {}", name_, queue_sel_, status.error().message);
        // The driver cannot use this device until it resets it (2.1.2).
        status_.SetNeedsReset();
        interrupt_.SignalConfigChange();
      }
      return;
    case kQueueDescLow:
      return queue->set_desc_table(low(queue->desc_table(), value));
    case kQueueDescHigh:
      return queue->set_desc_table(high(queue->desc_table(), value));
    case kQueueDriverLow:
      return queue->set_avail_ring(low(queue->avail_ring(), value));
    case kQueueDriverHigh:
      return queue->set_avail_ring(high(queue->avail_ring(), value));
    case kQueueDeviceLow:
      return queue->set_used_ring(low(queue->used_ring(), value));
    case kQueueDeviceHigh:
      return queue->set_used_ring(high(queue->used_ring(), value));
    default:
      return;
  }
}

bool MmioTransport::FeaturesAcceptable() const {
  // 3.1.1 step 5-6: a subset of what is offered; 4.2.3.1: VERSION_1 (no legacy).
  return (driver_features_ & ~offered_features_) == 0 && (driver_features_ & kFVersion1) != 0;
}

void MmioTransport::WriteStatus(uint32_t value) {
  if (value > 0xff) {
    counters_.refused_writes++;
    return;
  }
  switch (status_.Write(static_cast<uint8_t>(value), FeaturesAcceptable())) {
    case DeviceStatus::WriteResult::kReset:
      ResetLocked();
      return;
    case DeviceStatus::WriteResult::kDriverOk:
      device_active_ = ActivateOrNeedReset(*device_, memory_, queues_, driver_features_, interrupt_,
                                           status_, name_);
      if (!device_active_) counters_.activation_failures++;
      return;
    default:
      return;
  }
}

void MmioTransport::ResetLocked() {
  // 2.4: the device drops its queues first, then the transport's registers go back to
  // their initial values.
  device_->Reset();
  device_active_ = false;
  for (Queue& queue : queues_) queue.Reset();
  status_.Reset();
  device_features_sel_ = driver_features_sel_ = queue_sel_ = 0;
  driver_features_ = 0;
  interrupt_status_.store(0, std::memory_order_release);
}

void MmioTransport::NotifyQueue(uint32_t index) {
  {
    std::lock_guard lock(mu_);
    if (!status_.AcceptNotification()) return;
    if (index >= queues_.size()) {
      counters_.bad_notifications++;
      return;
    }
    counters_.notifications++;
  }
  // Outside the lock: the device guards itself and drops notifications while inactive.
  device_->QueueNotify(static_cast<uint16_t>(index));
}

void MmioTransport::NotifyAllQueues() {
  for (uint32_t q = 0; q < queues_.size(); ++q) NotifyQueue(q);
}

std::string MmioCmdlineParam(GuestAddress base, uint64_t size, uint32_t gsi) {
  std::string size_text;
  if (size != 0 && size % (1ull << 30) == 0) {
    size_text = fmt::format("{}G", size >> 30);
  } else if (size != 0 && size % (1ull << 20) == 0) {
    size_text = fmt::format("{}M", size >> 20);
  } else if (size != 0 && size % (1ull << 10) == 0) {
    size_text = fmt::format("{}K", size >> 10);
  } else {
    size_text = fmt::format("{}", size);
  }
  return fmt::format("virtio_mmio.device={}@{:#x}:{}", size_text, base, gsi);
}

}  // namespace vireo::virtio
