#include "vmm/device_counters.h"

#include <fmt/format.h>

#include <map>

#include "virtio/blk.h"
#include "virtio/net/net.h"

namespace vireo {

std::vector<std::string> DeviceNames(
    std::span<const std::shared_ptr<virtio::VirtioDevice>> devices) {
  std::map<std::string, int> next;
  std::vector<std::string> names;
  for (const auto& device : devices) {
    std::string type(device->name());
    names.push_back(fmt::format("{}{}", type, next[type]++));
  }
  return names;
}

std::vector<DeviceCounters> CollectDeviceCounters(
    std::span<const std::shared_ptr<virtio::VirtioDevice>> devices) {
  std::vector<DeviceCounters> out;
  const std::vector<std::string> names = DeviceNames(devices);
  for (size_t i = 0; i < devices.size(); ++i) {
    if (const auto* blk = dynamic_cast<const virtio::Blk*>(devices[i].get())) {
      const virtio::BlkCounters c = blk->counters();
      out.push_back({names[i],
                     {{"reads", c.reads},
                      {"writes", c.writes},
                      {"flushes", c.flushes},
                      {"discards", c.discards},
                      {"write_zeroes", c.write_zeroes},
                      {"bytes_read", c.bytes_read},
                      {"bytes_written", c.bytes_written},
                      {"io_errors", c.io_errors},
                      {"bad_requests", c.bad_requests},
                      {"in_flight", blk->in_flight()}}});
    } else if (const auto* net = dynamic_cast<const virtio::Net*>(devices[i].get())) {
      const virtio::NetCounters c = net->counters();
      out.push_back({names[i],
                     {{"rx_packets", c.rx_packets},
                      {"rx_bytes", c.rx_bytes},
                      {"rx_dropped", c.rx_dropped},
                      {"rx_errors", c.rx_errors},
                      {"tx_packets", c.tx_packets},
                      {"tx_bytes", c.tx_bytes},
                      {"tx_dropped", c.tx_dropped},
                      {"tx_bad_chains", c.tx_bad_chains},
                      {"announcements", c.announcements}}});
    }
  }
  return out;
}

}  // namespace vireo

namespace vireo {
size_t InFlightRequests(std::span<const std::shared_ptr<virtio::VirtioDevice>> devices) {
  size_t total = 0;
  for (const auto& device : devices) {
    if (const auto* blk = dynamic_cast<const virtio::Blk*>(device.get())) total += blk->in_flight();
  }
  return total;
}
}  // namespace vireo
