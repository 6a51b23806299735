#include "virtio/blk_request.h"

#include <algorithm>

#include "virtio/descriptor_io.h"

namespace vireo::virtio {
namespace {

// Turns bytes [skip, skip + len) of `buffers` into iovecs in `storage`. Bounded by the
// chain's length, which Queue::Pop already bounded.
BlkError BuildIov(const GuestMemory& memory, std::span<const ChainBuffer> buffers, uint64_t skip,
                  uint64_t len, std::span<iovec> storage, size_t& count) {
  count = 0;
  for (const ChainBuffer& buffer : buffers) {
    if (len == 0) break;
    if (skip >= buffer.len) {
      skip -= buffer.len;
      continue;
    }
    uint64_t take = std::min<uint64_t>(buffer.len - skip, len);
    if (count == storage.size()) return BlkError::kTooManySegments;
    auto span = memory.Span(buffer.addr + skip, take);
    if (!span) return BlkError::kBadMemory;
    storage[count++] = iovec{span->data(), take};
    len -= take;
    skip = 0;
  }
  return len == 0 ? BlkError::kNone : BlkError::kBadMemory;
}

void ParseData(const GuestMemory& memory, const DescriptorChain& chain, const BlkLimits& limits,
               uint64_t in_bytes, uint64_t out_bytes, std::span<iovec> storage, BlkRequest& out) {
  const bool read = out.type == kBlkTIn;
  const uint64_t data = read ? out_bytes : in_bytes;
  const uint64_t other = read ? in_bytes : out_bytes;
  if (!read && limits.read_only) {
    out.error = BlkError::kReadOnly;
  } else if (other != 0) {
    out.error = BlkError::kWrongDirection;
  } else if (data % kBlkSectorSize != 0) {
    out.error = BlkError::kBadLength;
  } else if (data > limits.max_data_bytes) {
    out.error = BlkError::kTooLarge;
  } else if (!BlkRangeFits(out.sector, data, limits.capacity_sectors)) {
    out.error = BlkError::kOutOfRange;
  } else {
    // IN data is the writable bytes before the status; OUT data the readable bytes after
    // the header.
    out.error = read ? BuildIov(memory, chain.writable(), 0, data, storage, out.iov_count)
                     : BuildIov(memory, chain.readable(), sizeof(BlkRequestHeader), data, storage,
                                out.iov_count);
    out.data_len = data;
    out.op = read ? BlkOp::kRead : BlkOp::kWrite;
  }
}

void ParseDiscardWriteZeroes(ChainReader& reader, const BlkLimits& limits, uint64_t in_bytes,
                             uint64_t out_bytes, BlkRequest& out) {
  const bool discard = out.type == kBlkTDiscard;
  const uint32_t max_sectors =
      discard ? limits.max_discard_sectors : limits.max_write_zeroes_sectors;
  const size_t max_seg = std::min<size_t>(
      discard ? limits.max_discard_seg : limits.max_write_zeroes_seg, kBlkMaxDwzSegments);
  if (!(discard ? limits.discard : limits.write_zeroes)) {
    out.error = BlkError::kUnsupported;
    return;
  }
  if (limits.read_only) {
    out.error = BlkError::kReadOnly;
    return;
  }
  if (out_bytes != 0) {
    out.error = BlkError::kWrongDirection;
    return;
  }
  if (in_bytes == 0 || in_bytes % sizeof(BlkDwzSegment) != 0) {
    out.error = BlkError::kBadLength;
    return;
  }
  const uint64_t count = in_bytes / sizeof(BlkDwzSegment);
  if (count > max_seg) {
    out.error = BlkError::kTooManySegments;
    return;
  }
  for (size_t i = 0; i < count; ++i) {  // bounded by kBlkMaxDwzSegments
    auto segment = reader.ReadObj<BlkDwzSegment>();
    if (!segment) {
      out.error = BlkError::kBadMemory;
      return;
    }
    // 5.2.6.2: UNSUPP for unknown flags, and for unmap on a discard.
    if ((segment->flags & ~kBlkDwzFlagUnmap) != 0 ||
        (discard && (segment->flags & kBlkDwzFlagUnmap) != 0)) {
      out.error = BlkError::kBadFlags;
      return;
    }
    if (segment->num_sectors > max_sectors) {
      out.error = BlkError::kTooLarge;
      return;
    }
    const uint64_t bytes = uint64_t{segment->num_sectors} << kBlkSectorShift;
    if (!BlkRangeFits(segment->sector, bytes, limits.capacity_sectors)) {
      out.error = BlkError::kOutOfRange;
      return;
    }
    out.segments[i] = *segment;
  }
  out.segment_count = count;
  out.op = discard ? BlkOp::kDiscard : BlkOp::kWriteZeroes;
}

}  // namespace

uint8_t BlkRequest::status() const {
  switch (error) {
    case BlkError::kNone:
      return kBlkSOk;
    case BlkError::kUnsupported:
    case BlkError::kBadFlags:
      return kBlkSUnsupp;
    default:
      return kBlkSIoErr;
  }
}

bool BlkRangeFits(uint64_t sector, uint64_t bytes, uint64_t capacity_sectors) {
  if (sector > capacity_sectors) return false;
  // Compare in sectors: ceil(bytes / 512) <= room, which cannot overflow.
  const uint64_t room = capacity_sectors - sector;
  const uint64_t need = bytes / kBlkSectorSize + (bytes % kBlkSectorSize != 0 ? 1 : 0);
  return need <= room;
}

void ParseBlkRequest(const GuestMemory& memory, const DescriptorChain& chain,
                     const BlkLimits& limits, std::span<iovec> iov_storage, BlkRequest& out) {
  out.op = BlkOp::kNone;
  out.type = 0;
  out.sector = 0;
  out.error = BlkError::kNone;
  out.has_status = false;
  out.status_addr = 0;
  out.data_len = 0;
  out.iov_count = 0;
  out.segment_count = 0;

  // The status is the last device-writable byte (5.2.6). Pop skips zero-length buffers,
  // so the last writable buffer holds at least one byte.
  std::span<const ChainBuffer> writable = chain.writable();
  if (writable.empty() || chain.writable_len() == 0) {
    out.error = BlkError::kNoStatus;
    return;
  }
  out.has_status = true;
  out.status_addr = writable.back().addr + writable.back().len - 1;
  const uint64_t out_bytes = chain.writable_len() - 1;  // writable bytes before the status

  ChainReader reader(memory, chain);
  auto header = reader.ReadObj<BlkRequestHeader>();
  if (!header) {
    out.error = BlkError::kShortHeader;
    return;
  }
  out.type = header->type;
  out.sector = header->sector;
  const uint64_t in_bytes = reader.remaining();  // readable bytes after the header

  switch (header->type) {
    case kBlkTIn:
    case kBlkTOut:
      ParseData(memory, chain, limits, in_bytes, out_bytes, iov_storage, out);
      return;
    case kBlkTFlush:
      if (!limits.flush) {
        out.error = BlkError::kUnsupported;
      } else if (in_bytes != 0 || out_bytes != 0) {
        out.error = BlkError::kWrongDirection;
      } else {
        out.op = BlkOp::kFlush;
      }
      return;
    case kBlkTGetId:
      if (in_bytes != 0) {
        out.error = BlkError::kWrongDirection;
      } else {
        out.data_len = out_bytes;
        out.op = BlkOp::kGetId;
      }
      return;
    case kBlkTDiscard:
    case kBlkTWriteZeroes:
      ParseDiscardWriteZeroes(reader, limits, in_bytes, out_bytes, out);
      return;
    default:  // GET_LIFETIME, SECURE_ERASE (features not offered) and unknown types
      out.error = BlkError::kUnsupported;
      return;
  }
}

}  // namespace vireo::virtio
