#include "virtio/device.h"

#include <algorithm>
#include <cstring>

#include "base/bytes.h"
#include "base/log.h"

namespace vireo::virtio {

bool ReadConfigBytes(std::span<const uint8_t> config, uint64_t offset, std::span<uint8_t> out) {
  if (!RangeFits(offset, out.size(), config.size())) {
    std::fill(out.begin(), out.end(), 0);
    return false;
  }
  if (!out.empty()) std::memcpy(out.data(), config.data() + offset, out.size());
  return true;
}

Status ActivateWithFeatures(VirtioDevice& device, const GuestMemory& memory,
                            std::span<Queue> queues, uint64_t features, QueueInterrupt& interrupt) {
  for (Queue& queue : queues) {
    queue.set_event_idx((features & kFEventIdx) != 0);
    queue.set_indirect_desc((features & kFIndirectDesc) != 0);
  }
  return device.Activate(ActivateContext{memory, queues, features, interrupt});
}

bool ActivateOrNeedReset(VirtioDevice& device, const GuestMemory& memory, std::span<Queue> queues,
                         uint64_t features, QueueInterrupt& interrupt, DeviceStatus& status,
                         std::string_view transport) {
  auto activated = ActivateWithFeatures(device, memory, queues, features, interrupt);
  if (activated) return true;
  Log(LogLevel::kWarn, "{}: activation failed: {}", transport, activated.error().message);
  status.SetNeedsReset();
  interrupt.SignalConfigChange();
  return false;
}

}  // namespace vireo::virtio
