// The live-migration stream (docs/snapshot-migration.md, "Live migration"): an 8-byte magic and
// a version, then frames of [type u32, payload size u32, CRC-32 of the payload u32] + payload,
// little-endian. The source sends HELLO (the RAM layout), with block migration DISKS (the disks'
// sizes) and DISK_CHUNK records, PAGES batches while pre-copying, STATE (a snapshot state file,
// the same encoding as `vireo run --restore` reads) and END; the destination answers one ACK
// frame (status 0, or an error message) once it has rebuilt the VM. A post-copy migration
// sends POSTCOPY (the pages still to come) instead of END, then the missing pages, the ones the
// destination asks for (PAGE_REQUEST) first, and END; a second ACK says every page arrived.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "block/image.h"
#include "memory/guest_memory.h"

namespace vireo::migration {

inline constexpr char kMagic[8] = {'V', 'I', 'R', 'E', 'O', 'M', 'I', 'G'};
// 2: DISKS and DISK_CHUNK (block migration); 3: POSTCOPY and PAGE_REQUEST (post-copy).
inline constexpr uint32_t kVersion = 3;
inline constexpr uint64_t kPageSize = 4096;
inline constexpr size_t kFrameHeaderSize = 12;
inline constexpr uint32_t kPagesPerBatch = 256;  // ~1 MiB frames
// Bounds a hostile peer cannot push past: nothing Vireo sends comes near them.
inline constexpr size_t kMaxRegions = 16;
inline constexpr size_t kMaxAckMessage = 4096;
inline constexpr uint64_t kMaxRamBytes = 1ull << 40;  // what HELLO may ask the destination for
inline constexpr size_t kMaxDisks = 64;
// Block migration's unit: a disk travels as 64 KiB chunks (block/dirty_chunks.h tracks them).
inline constexpr uint32_t kDiskChunkSize = 64 << 10;
inline constexpr size_t kDiskChunkHeader = 17;  // u32 disk, u64 offset, u8 kind, u32 length

enum class FrameType : uint32_t {
  kHello = 1,      // u32 page size, u32 region count, per region u64 base and u64 size
  kPages = 2,      // u32 count; per page u64 page number (RAM offset / 4 KiB), u8 kind, 4 KiB if 1
  kState = 3,      // a snapshot state file (vmm/snapshot/state_file.h), CRC and all
  kEnd = 4,        // empty: nothing follows; the destination rebuilds the VM and acknowledges
  kAck = 5,        // destination -> source: u32 status (0 = resumed here), text message
  kDisks = 6,      // block migration: u32 chunk size, u32 count, per disk u64 size in bytes
  kDiskChunk = 7,  // u32 disk, u64 offset, u8 kind (0 zero, 1 data), u32 length, data if 1
  kPostcopy = 8,   // u64 page count, then a bitmap of the pages still to come (1 = missing)
  kPageRequest = 9,  // destination -> source: u32 count (1..256), u64 page numbers
};

enum class PageKind : uint8_t { kZero = 0, kData = 1 };

// "tcp:HOST:PORT" (HOST a name or IPv4 address; [v6] in brackets).
struct TcpAddress {
  std::string host;
  std::string port;
};
Result<TcpAddress> ParseUri(const std::string& uri);

// Blocking sockets with send/receive timeouts, so a vanished peer is an error, not a hang.
Result<UniqueFd> Connect(const TcpAddress& address, int timeout_ms);
Result<UniqueFd> Listen(const TcpAddress& address);
void SetTimeouts(int fd, int timeout_ms);

Status SendAll(int fd, std::span<const uint8_t> data);
Status ReceiveAll(int fd, std::span<uint8_t> out);

std::vector<uint8_t> EncodeFrame(FrameType type, std::span<const uint8_t> payload);

struct Frame {
  FrameType type = FrameType::kEnd;
  std::vector<uint8_t> payload;
};
// Reads one frame, refusing unknown types, a size above that type's bound and a CRC mismatch.
Result<Frame> ReadFrame(int fd);

// The stream's opening: magic and version.
std::vector<uint8_t> EncodePreamble();
// Refuses a foreign stream and another version, naming both versions.
Status CheckPreamble(std::span<const uint8_t> preamble);

std::vector<uint8_t> EncodeHello(std::span<const RamRange> ram);
Result<std::vector<RamRange>> DecodeHello(std::span<const uint8_t> payload);

std::vector<uint8_t> EncodeAck(uint32_t status, const std::string& message);
struct Ack {
  uint32_t status = 0;
  std::string message;
};
Result<Ack> DecodeAck(std::span<const uint8_t> payload);

// Writes the pages of a PAGES payload into `memory` (laid out as `ram`, region after region),
// checking every page number and kind.
Result<uint64_t> ApplyPages(std::span<const uint8_t> payload, const GuestMemory& memory);
// Checks a PAGES payload against a RAM of `total_pages` pages and calls `place` with each page
// number and its data (empty for a zero page); the first error `place` returns ends the walk.
Result<uint64_t> ForEachPage(
    std::span<const uint8_t> payload, uint64_t total_pages,
    const std::function<Status(uint64_t, std::span<const uint8_t>)>& place);

// Post-copy's switch: the pages the destination must fetch, as a bitmap over all RAM pages
// (64 pages a word, bit i of word w is page 64 w + i).
std::vector<uint8_t> EncodePostcopy(std::span<const uint64_t> missing, uint64_t total_pages);
// Refuses another page count than the RAM HELLO announced and bits past its end.
Result<std::vector<uint64_t>> DecodePostcopy(std::span<const uint8_t> payload,
                                             uint64_t total_pages);
// The pages a post-copy destination faulted on (at most kPagesPerBatch, each inside RAM).
std::vector<uint8_t> EncodePageRequest(std::span<const uint64_t> pages);
Result<std::vector<uint64_t>> DecodePageRequest(std::span<const uint8_t> payload,
                                                uint64_t total_pages);

// Block migration: the source's disk sizes, in its configuration's order.
std::vector<uint8_t> EncodeDisks(std::span<const uint64_t> sizes);
Result<std::vector<uint64_t>> DecodeDisks(std::span<const uint8_t> payload);
// One chunk of disk `disk` at `offset` (a multiple of kDiskChunkSize): `data` is its bytes, or
// empty with `zero_length` for a chunk that reads as zeros.
std::vector<uint8_t> EncodeDiskChunk(uint32_t disk, uint64_t offset, std::span<const uint8_t> data,
                                     uint32_t zero_length);
// Writes a DISK_CHUNK into `disks` (the destination's images, the source's order), refusing a
// disk index, an offset or a length that does not fit a whole chunk of that disk. Returns the
// chunk's length.
Result<uint64_t> ApplyDiskChunk(std::span<const uint8_t> payload,
                                std::span<block::Image* const> disks);

}  // namespace vireo::migration
