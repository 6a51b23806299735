// libFuzzer target for virtio-blk request parsing (virtio 1.2, 5.2.6): fuzzed guest memory
// holds a virtqueue whose chains are parsed into typed requests. Every parse must end in a
// request or an error status, with data buffers only ever inside guest RAM.
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>

#include "memory/guest_memory.h"
#include "virtio/blk_request.h"
#include "virtio/queue.h"
#include "virtio/testing/fuzz_queue.h"

using namespace vireo;
using namespace vireo::virtio;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  GuestMemory* memory = &testing::FuzzMemory();
  if (size < 8) return 0;
  // The first bytes choose the queue shape and the device's limits.
  uint16_t queue_size = static_cast<uint16_t>(1u << (data[0] % 9));  // 1..256
  BlkLimits limits;
  limits.capacity_sectors = data[1] & 1 ? 2048 : (uint64_t{data[2]} << 40);
  limits.read_only = data[1] & 2;
  limits.discard = data[1] & 4;
  limits.write_zeroes = data[1] & 8;
  limits.max_discard_sectors = data[3];
  limits.max_discard_seg = data[4] % (kBlkMaxDwzSegments + 1);
  limits.max_write_zeroes_sectors = data[5];
  limits.max_write_zeroes_seg = data[6] % (kBlkMaxDwzSegments + 1);
  bool indirect = data[7] & 1;
  data += 8;
  size -= 8;

  Queue queue = testing::FuzzQueue(*memory, queue_size, data, size);
  queue.set_indirect_desc(indirect);
  if (!queue.Activate(*memory)) return 0;

  DescriptorChain chain;
  std::array<iovec, 64> iov{};
  BlkRequest request;
  for (int i = 0; i <= queue_size; ++i) {
    PopResult result = queue.Pop(*memory, chain);
    if (result == PopResult::kEmpty || result == PopResult::kBroken) break;
    if (result == PopResult::kChain) {
      ParseBlkRequest(*memory, chain, limits, iov, request);
      // Every data buffer handed to the backend must lie inside guest RAM.
      for (size_t b = 0; b < request.iov_count && b < iov.size(); ++b) {
        bool inside = false;
        for (const auto& region : memory->regions()) {
          auto* base = region.mapping.bytes();
          auto* p = static_cast<uint8_t*>(iov[b].iov_base);
          if (p >= base && p + iov[b].iov_len <= base + region.range.size) inside = true;
        }
        if (!inside && iov[b].iov_len > 0) __builtin_trap();
      }
    }
    queue.AddUsed(*memory, chain.head(), 0);
  }
  return 0;
}
