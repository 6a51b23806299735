// Per-device I/O counters for the control API, read from the devices that keep them.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "vmm/vm_controller.h"

namespace vireo {
namespace virtio {
class VirtioDevice;
}

// Names each device "<type><index>" (blk0, net0, rng0, ...), in order.
std::vector<std::string> DeviceNames(
    std::span<const std::shared_ptr<virtio::VirtioDevice>> devices);

// Counters of the devices that expose them (virtio-blk and virtio-net); others are left out.
std::vector<DeviceCounters> CollectDeviceCounters(
    std::span<const std::shared_ptr<virtio::VirtioDevice>> devices);

}  // namespace vireo

namespace vireo {
// Device requests handed to a backend and not yet completed (virtio-blk); pause waits for 0.
size_t InFlightRequests(std::span<const std::shared_ptr<virtio::VirtioDevice>> devices);
}  // namespace vireo
