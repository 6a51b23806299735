// The common configuration block of PciTransport (virtio 1.2, 4.1.4.3): field reads and
// writes, the queue setup fields, feature negotiation, the status state machine and reset.
// Split from pci_transport.cc only for size; every function here runs under the
// transport lock (mu_).
#include "virtio/pci_common_cfg.h"

#include "base/log.h"
#include "virtio/pci_transport.h"

namespace vireo::virtio {

Queue* PciTransport::SelectedQueue() {
  return queue_select_ < queues_.size() ? &queues_[queue_select_] : nullptr;
}

void PciTransport::CommonRead(uint64_t offset, std::span<uint8_t> data) {
  auto field = common_cfg::NaturalAccess(offset, data.size());
  if (!field) {
    counters_.bad_access_size++;
    return;
  }
  const uint64_t value = FieldValue(field->offset) >> (8 * (offset - field->offset));
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(value >> (8 * i));
}

uint64_t PciTransport::FieldValue(uint64_t field) {
  namespace cc = common_cfg;
  Queue* queue = SelectedQueue();
  switch (field) {
    case cc::kDeviceFeatureSelect:
      return device_feature_select_;
    case cc::kDeviceFeature:
      // Feature words beyond bit 63 offer nothing.
      return device_feature_select_ < 2
                 ? (offered_features_ >> (32 * device_feature_select_)) & 0xffffffff
                 : 0;
    case cc::kDriverFeatureSelect:
      return driver_feature_select_;
    case cc::kDriverFeature:
      return driver_feature_select_ < 2
                 ? (driver_features_ >> (32 * driver_feature_select_)) & 0xffffffff
                 : 0;
    case cc::kMsixConfig:
      return msix_config_.load();
    case cc::kNumQueues:
      return num_queues_;
    case cc::kDeviceStatus:
      if (device_active_ && device_->needs_reset()) status_.SetNeedsReset();
      return status_.value();
    case cc::kConfigGeneration:
      return config_generation_.load(std::memory_order_acquire) & 0xff;
    case cc::kQueueSelect:
      return queue_select_;
    case cc::kQueueSize:
      return queue ? queue->size() : 0;  // 0: "the queue is unavailable"
    case cc::kQueueMsixVector:
      return queue ? queue_vectors_[queue_select_].load() : kNoVector;
    case cc::kQueueEnable:
      return queue && queue->ready() ? 1 : 0;
    case cc::kQueueNotifyOff:
    case cc::kQueueNotifyData:
      return queue ? queue_select_ : 0;
    case cc::kQueueDesc:
      return queue ? queue->desc_table() : 0;
    case cc::kQueueDriver:
      return queue ? queue->avail_ring() : 0;
    case cc::kQueueDevice:
      return queue ? queue->used_ring() : 0;
    default:  // kQueueReset: VIRTIO_F_RING_RESET is not offered
      return 0;
  }
}

void PciTransport::CommonWrite(uint64_t offset, std::span<const uint8_t> data) {
  auto field = common_cfg::NaturalAccess(offset, data.size());
  if (!field) {
    counters_.bad_access_size++;
    return;
  }
  if (!field->writable) {
    counters_.bad_register++;
    return;
  }
  uint64_t value = 0;
  for (size_t i = 0; i < data.size(); ++i) value |= uint64_t{data[i]} << (8 * i);
  WriteField(field->offset, value, offset, data.size());
}

uint16_t PciTransport::CheckedVector(uint64_t value) {
  // 4.1.5.1.2.1: a mapping the device cannot satisfy reads back as NO_VECTOR.
  if (value == kNoVector || value < msix_->vectors()) return static_cast<uint16_t>(value);
  bad_vectors_.fetch_add(1, std::memory_order_relaxed);
  return kNoVector;
}

void PciTransport::WriteField(uint64_t field, uint64_t value, uint64_t offset, size_t size) {
  namespace cc = common_cfg;
  switch (field) {
    case cc::kDeviceFeatureSelect:
      device_feature_select_ = static_cast<uint32_t>(value);
      return;
    case cc::kDriverFeatureSelect:
      driver_feature_select_ = static_cast<uint32_t>(value);
      return;
    case cc::kDriverFeature: {
      // 3.1.1 step 5: features are written before FEATURES_OK and not changed after.
      if (status_.features_ok() || driver_feature_select_ >= 2) {
        counters_.refused_writes++;
        return;
      }
      const uint32_t shift = 32 * driver_feature_select_;
      driver_features_ = (driver_features_ & ~(0xffffffffull << shift)) | (value << shift);
      return;
    }
    case cc::kMsixConfig:
      msix_config_.store(CheckedVector(value));
      return;
    case cc::kDeviceStatus:
      WriteStatus(value);
      return;
    case cc::kQueueSelect:
      queue_select_ = static_cast<uint16_t>(value);
      return;
    case cc::kQueueMsixVector:
      // Not frozen with the queue: Linux unmaps vectors (writes NO_VECTOR) at teardown.
      if (SelectedQueue() == nullptr) {
        counters_.refused_writes++;
        return;
      }
      queue_vectors_[queue_select_].store(CheckedVector(value));
      return;
    case cc::kQueueReset:  // VIRTIO_F_RING_RESET is not offered
      return;
    default:
      WriteQueueField(field, value, offset, size);
      return;
  }
}

void PciTransport::WriteQueueField(uint64_t field, uint64_t value, uint64_t offset, size_t size) {
  namespace cc = common_cfg;
  Queue* queue = SelectedQueue();
  // 4.1.4.3.2: queues are set up before DRIVER_OK, and an enabled queue is not changed;
  // "The driver MUST NOT write a 0 to queue_enable".
  if (queue == nullptr || status_.Has(DeviceStatus::kDriverOk) || queue->ready() ||
      (field == cc::kQueueEnable && value != 1)) {
    counters_.refused_writes++;
    return;
  }
  // A 64-bit field written whole, or one 32-bit half of it (4.1.3.1).
  auto merge = [&](GuestAddress old) -> GuestAddress {
    if (size == 8) return value;
    return offset == field ? (old & ~0xffffffffull) | value : (old & 0xffffffffull) | (value << 32);
  };
  switch (field) {
    case cc::kQueueSize:
      // 4.1.4.3.2: a power of two no larger than the maximum; Queue::Activate checks.
      queue->set_size(static_cast<uint16_t>(value));
      return;
    case cc::kQueueEnable:
      if (auto status = queue->Activate(memory_); !status) {
        counters_.invalid_queues++;
        Log(LogLevel::kDebug, "{}: queue {}: {}", name_, queue_select_, status.error().message);
        // The driver cannot use this device until it resets it (2.1.2).
        status_.SetNeedsReset();
        interrupt_.SignalConfigChange();
      }
      return;
    case cc::kQueueDesc:
      return queue->set_desc_table(merge(queue->desc_table()));
    case cc::kQueueDriver:
      return queue->set_avail_ring(merge(queue->avail_ring()));
    case cc::kQueueDevice:
      return queue->set_used_ring(merge(queue->used_ring()));
    default:
      return;
  }
}

bool PciTransport::FeaturesAcceptable() const {
  // 3.1.1 steps 5-6: a subset of what is offered; 4.1.2.2: no legacy, so VERSION_1.
  return (driver_features_ & ~offered_features_) == 0 && (driver_features_ & kFVersion1) != 0;
}

void PciTransport::WriteStatus(uint64_t value) {
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

void PciTransport::ResetLocked() {
  // 2.4: the device drops its queues first; then the transport's fields go back to their
  // initial values (4.1.5.1.2.1: "all queue and configuration change events unmapped").
  device_->Reset();
  device_active_ = false;
  for (Queue& queue : queues_) queue.Reset();
  status_.Reset();
  device_feature_select_ = driver_feature_select_ = 0;
  queue_select_ = 0;
  driver_features_ = 0;
  isr_.store(0, std::memory_order_release);
  msix_config_.store(kNoVector);
  for (uint16_t q = 0; q < num_queues_; ++q) queue_vectors_[q].store(kNoVector);
}

}  // namespace vireo::virtio
