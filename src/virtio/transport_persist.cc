// Snapshot state of the virtio-mmio and virtio-pci transports (transport_state.h). Restore
// runs every value through the checks a driver's writes meet: the status machine's order,
// features within those offered, vectors within the MSI-X table, and Queue::Restore, which
// re-validates each ready queue's rings against guest memory.
#include <algorithm>
#include <array>

#include "virtio/mmio_transport.h"
#include "virtio/pci_transport.h"

namespace vireo::virtio {
namespace {

// Shared by both transports: everything but the transport's own registers.
Status CheckCommon(const TransportState& state, uint64_t offered, size_t num_queues,
                   uint32_t isr_bits, std::string_view name) {
  if (state.queues.size() != num_queues) {
    return Fail("{}: the snapshot has {} queues, the device {}", name, state.queues.size(),
                num_queues);
  }
  if ((state.driver_features & ~offered) != 0) {
    return Fail("{}: driver features {:#x} include some never offered ({:#x})", name,
                state.driver_features, offered);
  }
  if ((state.status & DeviceStatus::kFeaturesOk) && !(state.driver_features & kFVersion1)) {
    return Fail("{}: FEATURES_OK without VIRTIO_F_VERSION_1", name);
  }
  if ((state.interrupt_status & ~isr_bits) != 0) {
    return Fail("{}: interrupt status {:#x} has unknown bits", name, state.interrupt_status);
  }
  return {};
}

// Restores the queues, then (at DRIVER_OK, unless the device had asked for a reset) hands
// them to the device as the DRIVER_OK write would.
Status RestoreQueuesAndActivate(VirtioDevice& device, const GuestMemory& memory,
                                std::span<Queue> queues, const TransportState& state,
                                const DeviceStatus& status, QueueInterrupt& interrupt, bool& active,
                                std::string_view name) {
  for (size_t q = 0; q < queues.size(); ++q) {
    if (auto restored = queues[q].Restore(memory, state.queues[q]); !restored) {
      return Wrap(fmt::format("{}: queue {}", name, q), restored.error());
    }
  }
  if (!status.driver_ok() || status.Has(DeviceStatus::kDeviceNeedsReset)) return {};
  if (auto activated =
          ActivateWithFeatures(device, memory, queues, state.driver_features, interrupt);
      !activated) {
    return Wrap(fmt::format("{}: activating the restored device", name), activated.error());
  }
  active = true;
  return {};
}

}  // namespace

// ---- virtio-pci ----

TransportState PciTransport::SaveState() const {
  std::lock_guard lock(mu_);
  TransportState state;
  state.status = status_.value();
  state.device_features_select = device_feature_select_;
  state.driver_features_select = driver_feature_select_;
  state.driver_features = driver_features_;
  state.queue_select = queue_select_;
  state.config_generation = config_generation_.load();
  state.interrupt_status = isr_.load();
  for (const Queue& queue : queues_) state.queues.push_back(queue.state());
  state.config_vector = msix_config_.load();
  for (uint16_t q = 0; q < num_queues_; ++q)
    state.queue_vectors.push_back(queue_vectors_[q].load());
  state.pci_config.assign(config_.raw().begin(), config_.raw().end());
  state.msix = msix_->state();
  return state;
}

Status PciTransport::RestoreState(const TransportState& state) {
  std::lock_guard lock(mu_);
  if (status_.value() != 0 || device_active_) {
    return Fail("{}: restoring into a transport the driver already set up", name_);
  }
  VIREO_TRY_STATUS(
      CheckCommon(state, offered_features_, num_queues_, kIsrQueue | kIsrConfig, name_));
  if (state.queue_vectors.size() != num_queues_ ||
      state.pci_config.size() != pci::kConfigSpaceSize) {
    return Fail(
        "{}: the snapshot has {} queue vectors and {} configuration bytes; expected {} "
        "and {}",
        name_, state.queue_vectors.size(), state.pci_config.size(), num_queues_,
        pci::kConfigSpaceSize);
  }
  auto valid_vector = [&](uint16_t v) { return v == kNoVector || v < msix_->vectors(); };
  if (!valid_vector(state.config_vector) ||
      !std::all_of(state.queue_vectors.begin(), state.queue_vectors.end(), valid_vector)) {
    return Fail("{}: an MSI-X vector beyond the table's {}", name_, msix_->vectors());
  }
  if (state.queue_select > 0xffff) return Fail("{}: queue_select {}", name_, state.queue_select);
  VIREO_TRY_STATUS(status_.Restore(state.status));

  // A refused restore leaves the transport as it was built: the BAR where the bus mapped it.
  const std::array<uint8_t, pci::kConfigSpaceSize> built_config = config_.raw();
  const pci::MsixState built_msix = msix_->state();
  auto fail = [&](Status status) {
    ResetLocked();
    config_.RestoreWritable(built_config);
    (void)msix_->Restore(built_msix, config_);
    return status;
  };
  config_.RestoreWritable(std::span<const uint8_t, pci::kConfigSpaceSize>(state.pci_config));
  if (auto restored = msix_->Restore(state.msix, config_); !restored) {
    return fail(Wrap(name_, restored.error()));
  }
  device_feature_select_ = state.device_features_select;
  driver_feature_select_ = state.driver_features_select;
  driver_features_ = state.driver_features;
  queue_select_ = static_cast<uint16_t>(state.queue_select);
  msix_config_.store(state.config_vector);
  for (uint16_t q = 0; q < num_queues_; ++q) queue_vectors_[q].store(state.queue_vectors[q]);
  config_generation_.store(state.config_generation);
  isr_.store(state.interrupt_status);
  if (auto restored = RestoreQueuesAndActivate(*device_, memory_, queues_, state, status_,
                                               interrupt_, device_active_, name_);
      !restored) {
    return fail(restored);
  }
  return {};
}

// ---- virtio-mmio ----

TransportState MmioTransport::SaveState() const {
  std::lock_guard lock(mu_);
  TransportState state;
  state.status = status_.value();
  state.device_features_select = device_features_sel_;
  state.driver_features_select = driver_features_sel_;
  state.driver_features = driver_features_;
  state.queue_select = queue_sel_;
  state.config_generation = config_generation_.load();
  state.interrupt_status = static_cast<uint8_t>(interrupt_status_.load());
  for (const Queue& queue : queues_) state.queues.push_back(queue.state());
  return state;
}

Status MmioTransport::RestoreState(const TransportState& state) {
  std::lock_guard lock(mu_);
  if (status_.value() != 0 || device_active_) {
    return Fail("{}: restoring into a transport the driver already set up", name_);
  }
  VIREO_TRY_STATUS(CheckCommon(state, offered_features_, queues_.size(),
                               kInterruptUsedBuffer | kInterruptConfigChange, name_));
  if (!state.queue_vectors.empty() || !state.pci_config.empty() || !state.msix.table.empty() ||
      !state.msix.pba.empty() || state.config_vector != pci::msix::kNoVector) {
    return Fail("{}: the snapshot holds virtio-pci state for a virtio-mmio device", name_);
  }
  VIREO_TRY_STATUS(status_.Restore(state.status));
  device_features_sel_ = state.device_features_select;
  driver_features_sel_ = state.driver_features_select;
  driver_features_ = state.driver_features;
  queue_sel_ = state.queue_select;
  config_generation_.store(state.config_generation);
  interrupt_status_.store(state.interrupt_status);
  if (auto restored = RestoreQueuesAndActivate(*device_, memory_, queues_, state, status_,
                                               interrupt_, device_active_, name_);
      !restored) {
    ResetLocked();
    return restored;
  }
  return {};
}

}  // namespace vireo::virtio
