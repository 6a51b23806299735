// virtio-balloon's own snapshot state as plain data (rule 4; docs/snapshot-migration.md).
// The inflated pages are not a set the device keeps: they were discarded (their contents
// are zeros in guest memory, and holes in the snapshot's memory file).
#pragma once

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

namespace vireo::virtio::balloon {

struct BalloonSavedState {
  uint32_t num_pages = 0;  // the host's target (5.5.4)
  uint32_t actual = 0;     // as the driver last wrote it
  // The stats buffer the device holds (5.5.6.3): its descriptor head, given back to the
  // driver on the next stats request; and the statistics it carried.
  std::optional<uint16_t> stats_head;
  std::vector<std::pair<uint16_t, uint64_t>> stats;

  bool operator==(const BalloonSavedState&) const = default;
};

}  // namespace vireo::virtio::balloon
