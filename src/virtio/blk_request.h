// Parsing one virtio-blk request (virtio 1.2, 5.2.6 "Device Operation") from a validated
// descriptor chain into a typed BlkRequest, before any I/O. Like Firecracker's
// block/virtio/request.rs, every guest-controlled number is checked here with overflow-safe
// arithmetic (sector * 512 never wraps), so the device only ever hands the backend requests
// that lie inside the disk.
//
// Layout (5.2.6, struct virtio_blk_req): a 16-byte header (type, reserved, sector) at the
// start of the device-readable bytes; for OUT the data follows it, readable; for IN and
// GET_ID the data is device-writable; DISCARD and WRITE_ZEROES carry an array of 16-byte
// struct virtio_blk_discard_write_zeroes after the header. The status byte is the last
// device-writable byte. No other framing is assumed (2.6.4): a header or data may share
// or straddle buffers. Bytes in the direction a type does not use are a driver error.
//
// Guest mistakes are data: the result is a BlkError and the status to report (IOERR or
// UNSUPP), or, with no writable byte to put a status in, has_status == false (complete the
// chain with used length 0). Nothing allocates or throws.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "memory/guest_memory.h"
#include "virtio/queue.h"

namespace vireo::virtio {

// Request types (5.2.6).
inline constexpr uint32_t kBlkTIn = 0;
inline constexpr uint32_t kBlkTOut = 1;
inline constexpr uint32_t kBlkTFlush = 4;
inline constexpr uint32_t kBlkTGetId = 8;
inline constexpr uint32_t kBlkTGetLifetime = 10;
inline constexpr uint32_t kBlkTDiscard = 11;
inline constexpr uint32_t kBlkTWriteZeroes = 13;
inline constexpr uint32_t kBlkTSecureErase = 14;
// Status values (5.2.6).
inline constexpr uint8_t kBlkSOk = 0;
inline constexpr uint8_t kBlkSIoErr = 1;
inline constexpr uint8_t kBlkSUnsupp = 2;
// struct virtio_blk_discard_write_zeroes flags (5.2.6).
inline constexpr uint32_t kBlkDwzFlagUnmap = 1;
// GET_ID: "a 20-byte string" (5.2.6).
inline constexpr size_t kBlkIdBytes = 20;
inline constexpr uint64_t kBlkSectorSize = 512;
inline constexpr unsigned kBlkSectorShift = 9;
// Most discard / write-zeroes segments one request may carry (advertised as max_*_seg).
inline constexpr size_t kBlkMaxDwzSegments = 16;

// The header of struct virtio_blk_req (5.2.6).
struct BlkRequestHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};
static_assert(sizeof(BlkRequestHeader) == 16);

// struct virtio_blk_discard_write_zeroes (5.2.6).
struct BlkDwzSegment {
  uint64_t sector;
  uint32_t num_sectors;
  uint32_t flags;
};
static_assert(sizeof(BlkDwzSegment) == 16);

// What the device can do and what the driver negotiated; fixed between Activate and Reset.
struct BlkLimits {
  uint64_t capacity_sectors = 0;
  bool read_only = false;
  bool flush = true;
  bool discard = false;       // VIRTIO_BLK_F_DISCARD negotiated
  bool write_zeroes = false;  // VIRTIO_BLK_F_WRITE_ZEROES negotiated
  uint64_t max_data_bytes = 1u << 30;
  uint32_t max_discard_sectors = 0;
  uint32_t max_discard_seg = 0;  // at most kBlkMaxDwzSegments
  uint32_t max_write_zeroes_sectors = 0;
  uint32_t max_write_zeroes_seg = 0;  // at most kBlkMaxDwzSegments
};

enum class BlkOp : uint8_t { kNone, kRead, kWrite, kFlush, kGetId, kDiscard, kWriteZeroes };

enum class BlkError : uint8_t {
  kNone,
  kNoStatus,         // no device-writable byte: nowhere to put a status
  kShortHeader,      // fewer than 16 readable bytes
  kUnsupported,      // unknown type, or a feature the driver did not negotiate (UNSUPP)
  kBadFlags,         // unknown discard/write-zeroes flags, or unmap on discard (UNSUPP)
  kWrongDirection,   // bytes the type does not use (e.g. readable data on IN)
  kBadLength,        // IN/OUT data not a multiple of 512, or a ragged segment array
  kTooLarge,         // data over max_data_bytes, or a segment over its sector limit
  kOutOfRange,       // past the end of the disk (overflow included)
  kTooManySegments,  // more data buffers than the iovec storage, or too many segments
  kReadOnly,         // a write on a read-only disk
  kBadMemory,        // a buffer outside RAM (Pop checks this, so a VMM bug if seen)
};

struct BlkRequest {
  BlkOp op = BlkOp::kNone;
  uint32_t type = 0;  // the header's raw type
  uint64_t sector = 0;
  BlkError error = BlkError::kNone;
  bool has_status = false;
  GuestAddress status_addr = 0;
  // kRead/kWrite: byte count of the data (the iovecs' total); kGetId: the writable data bytes.
  uint64_t data_len = 0;
  size_t iov_count = 0;  // kRead/kWrite: iovecs filled in the caller's storage
  size_t segment_count = 0;
  std::array<BlkDwzSegment, kBlkMaxDwzSegments> segments{};

  // The status to report: OK when error is kNone.
  uint8_t status() const;
  uint64_t offset() const { return sector << kBlkSectorShift; }  // valid when error is kNone
};

// Whether [sector * 512, sector * 512 + bytes) lies inside a disk of capacity_sectors,
// without overflow for any inputs.
bool BlkRangeFits(uint64_t sector, uint64_t bytes, uint64_t capacity_sectors);

// Parses `chain` into `out` (overwritten). For IN/OUT the data buffers become iovecs into
// guest memory (GuestMemory::Span) in iov_storage; more buffers than it holds is an error.
void ParseBlkRequest(const GuestMemory& memory, const DescriptorChain& chain,
                     const BlkLimits& limits, std::span<iovec> iov_storage, BlkRequest& out);

}  // namespace vireo::virtio
