// Shared by the virtqueue fuzz targets: the guest memory they use, and a queue laid out in it
// from fuzz input. Avail ring at 0x1000, descriptors at 0x2000, used ring at 0x4000; the input
// fills, in order, the avail ring (flags, idx, ring, used_event), the descriptor table, then
// free-form bytes from 0x5000 (indirect tables, headers, buffers). The rest stays zero.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace vireo::virtio::testing {

// Two RAM ranges with a hole between them, made once per fuzzing process.
inline GuestMemory& FuzzMemory() {
  static GuestMemory* memory = [] {
    const RamRange ranges[] = {{0, 1 << 20}, {2 << 20, 1 << 20}};
    MemoryOptions options;
    options.transparent_huge_pages = false;
    return new GuestMemory(std::move(*GuestMemory::Create(ranges, options)));
  }();
  return *memory;
}

// Writes the queue's memory from the input (consuming it) and returns the queue, not yet
// activated, with `queue_size` entries.
inline Queue FuzzQueue(GuestMemory& memory, uint16_t queue_size, const uint8_t*& data,
                       size_t& size) {
  std::vector<uint8_t> image(0x10000, 0);
  auto take = [&](size_t at, size_t len) {
    len = std::min(len, size);
    std::memcpy(image.data() + at, data, len);
    data += len;
    size -= len;
  };
  take(0x1000, 6 + 2u * queue_size);
  take(0x2000, 16u * queue_size);
  take(0x5000, image.size() - 0x5000);
  memory.Write(0, image);

  Queue queue(256);
  queue.set_size(queue_size);
  queue.set_desc_table(0x2000);
  queue.set_avail_ring(0x1000);
  queue.set_used_ring(0x4000);
  return queue;
}

}  // namespace vireo::virtio::testing
