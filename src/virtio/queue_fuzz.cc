// libFuzzer target for the split virtqueue (virtio 1.2, 2.7) and the chain reader/writer.
// The input is guest memory: the first bytes pick the queue set-up, the rest fill the
// avail ring, the descriptor table and an indirect/buffer area. Pop/AddUsed run until empty.
#include <cstddef>
#include <cstdint>

#include "memory/guest_memory.h"
#include "virtio/descriptor_io.h"
#include "virtio/queue.h"
#include "virtio/testing/fuzz_queue.h"

using namespace vireo;
using namespace vireo::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  GuestMemory* memory = &testing::FuzzMemory();
  if (size < 4) return 0;
  uint16_t queue_size = static_cast<uint16_t>(1u << (data[0] % 9));  // 1..256
  bool event_idx = data[1] & 1;
  bool indirect = data[1] & 2;
  data += 4;
  size -= 4;

  Queue queue = testing::FuzzQueue(*memory, queue_size, data, size);
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
