// libFuzzer target for the split virtqueue (virtio 1.2, 2.7) and the chain reader/writer.
// The input is guest memory: the first bytes pick the queue set-up, the rest fill the
// avail ring, the descriptor table and an indirect/buffer area. Pop/AddUsed run until empty.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "memory/guest_memory.h"
#include "virtio/descriptor_io.h"
#include "virtio/queue.h"

using namespace vireo;
using namespace vireo::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static GuestMemory* memory = [] {
    const RamRange ranges[] = {{0, 1 << 20}, {2 << 20, 1 << 20}};
    MemoryOptions options;
    options.transparent_huge_pages = false;
    return new GuestMemory(std::move(*GuestMemory::Create(ranges, options)));
  }();
  if (size < 4) return 0;
  uint16_t queue_size = static_cast<uint16_t>(1u << (data[0] % 9));  // 1..256
  bool event_idx = data[1] & 1;
  bool indirect = data[1] & 2;
  data += 4;
  size -= 4;

  // The input, in order: the avail ring (flags, idx, ring, used_event), the descriptor
  // table, then free-form bytes at 0x5000 for indirect tables and buffers. The rest of the
  // image is zero. Avail at 0x1000, descriptors at 0x2000, used ring at 0x4000.
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
  memory->Write(0, image);

  Queue queue(256);
  queue.set_size(queue_size);
  queue.set_desc_table(0x2000);
  queue.set_avail_ring(0x1000);
  queue.set_used_ring(0x4000);
  queue.set_event_idx(event_idx);
  queue.set_indirect_desc(indirect);
  if (!queue.Activate(*memory)) return 0;

  DescriptorChain chain;
  uint8_t scratch[512];
  for (int i = 0; i <= queue_size; ++i) {
    PopResult result = queue.Pop(*memory, chain);
    if (result == PopResult::kEmpty || result == PopResult::kBroken) break;
    uint32_t len = 0;
    if (result == PopResult::kChain) {
      ChainReader reader(*memory, chain);
      while (reader.Read(scratch) > 0) {
      }
      ChainWriter writer(*memory, chain);
      for (int round = 0; round < 8 && writer.Write(scratch) > 0; ++round) {
      }
      len = static_cast<uint32_t>(writer.bytes_written());
    }
    queue.AddUsed(*memory, chain.head(), len);
    queue.NeedsNotification(*memory);
  }
  return 0;
}
