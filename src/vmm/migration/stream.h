// The live-migration stream (docs/snapshot-migration.md, "Live migration"): an 8-byte magic and
// a version, then frames of [type u32, payload size u32, CRC-32 of the payload u32] + payload,
// little-endian. The source sends HELLO (the RAM layout), PAGES batches while pre-copying,
// STATE (a snapshot state file, the same encoding as `vireo run --restore` reads) and END; the
// destination answers one ACK frame (status 0, or an error message) once it has rebuilt the VM.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "memory/guest_memory.h"

namespace vireo::migration {

inline constexpr char kMagic[8] = {'V', 'I', 'R', 'E', 'O', 'M', 'I', 'G'};
inline constexpr uint32_t kVersion = 1;
inline constexpr uint64_t kPageSize = 4096;
inline constexpr size_t kFrameHeaderSize = 12;
inline constexpr uint32_t kPagesPerBatch = 256;  // ~1 MiB frames
// Bounds a hostile peer cannot push past: nothing Vireo sends comes near them.
inline constexpr size_t kMaxRegions = 16;
inline constexpr size_t kMaxAckMessage = 4096;
inline constexpr uint64_t kMaxRamBytes = 1ull << 40;  // what HELLO may ask the destination for

enum class FrameType : uint32_t {
  kHello = 1,  // u32 page size, u32 region count, per region u64 base and u64 size
  kPages = 2,  // u32 count; per page u64 page number (RAM offset / 4 KiB), u8 kind, 4 KiB if 1
  kState = 3,  // a snapshot state file (vmm/snapshot/state_file.h), CRC and all
  kEnd = 4,    // empty: nothing follows; the destination rebuilds the VM and acknowledges
  kAck = 5,    // destination -> source: u32 status (0 = resumed here), text message
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

}  // namespace vireo::migration
