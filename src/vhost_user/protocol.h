// The vhost-user wire format, backend side (QEMU docs/interop/vhost-user.rst, "Message
// Specification"). Every message is a 12-byte header (request, flags, payload size) followed by
// the payload, in host byte order over a Unix stream socket; file descriptors travel as
// SCM_RIGHTS ancillary data with the message's first byte.
//
// Only the requests and features Vireo implements are named here; docs/vhost-user.md lists
// what is supported and what is refused.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vireo::vhost_user {

// "Header": request type, flags, payload size.
struct Header {
  uint32_t request;
  uint32_t flags;
  uint32_t size;
};
static_assert(sizeof(Header) == 12);

// Header flags: bits 0-1 are the protocol version (1), bit 2 marks a reply, bit 3 asks for one.
inline constexpr uint32_t kVersionMask = 0x3;
inline constexpr uint32_t kVersion = 0x1;
inline constexpr uint32_t kFlagReply = 1u << 2;
inline constexpr uint32_t kFlagNeedReply = 1u << 3;

// "Front-end message types" (the numbers are the protocol's).
enum class Request : uint32_t {
  kGetFeatures = 1,
  kSetFeatures = 2,
  kSetOwner = 3,
  kResetOwner = 4,
  kSetMemTable = 5,
  kSetLogBase = 6,
  kSetLogFd = 7,
  kSetVringNum = 8,
  kSetVringAddr = 9,
  kSetVringBase = 10,
  kGetVringBase = 11,
  kSetVringKick = 12,
  kSetVringCall = 13,
  kSetVringErr = 14,
  kGetProtocolFeatures = 15,
  kSetProtocolFeatures = 16,
  kGetQueueNum = 17,
  kSetVringEnable = 18,
  kSendRarp = 19,
  kNetSetMtu = 20,
  kSetBackendReqFd = 21,
  kIotlbMsg = 22,
  kSetVringEndian = 23,
  kGetConfig = 24,
  kSetConfig = 25,
  kGetInflightFd = 31,
  kSetInflightFd = 32,
  kResetDevice = 34,
  kGetMaxMemSlots = 36,
  kAddMemReg = 37,
  kRemMemReg = 38,
  kSetStatus = 39,
  kGetStatus = 40,
};

const char* RequestName(uint32_t request);

// Virtio feature bit the backend sets to say it speaks protocol features ("Feature bits").
inline constexpr uint64_t kFProtocolFeatures = 1ull << 30;  // VHOST_USER_F_PROTOCOL_FEATURES
inline constexpr uint64_t kFLogAll = 1ull << 26;            // VHOST_F_LOG_ALL (not offered)

// "Protocol features" (VHOST_USER_PROTOCOL_F_*).
inline constexpr uint64_t kProtocolFMq = 1ull << 0;
inline constexpr uint64_t kProtocolFLogShmfd = 1ull << 1;
inline constexpr uint64_t kProtocolFReplyAck = 1ull << 3;
inline constexpr uint64_t kProtocolFBackendReq = 1ull << 5;
inline constexpr uint64_t kProtocolFConfig = 1ull << 9;

// "A vring state description" (SET_VRING_NUM, SET_VRING_BASE, GET_VRING_BASE,
// SET_VRING_ENABLE).
struct VringState {
  uint32_t index;
  uint32_t num;
};
static_assert(sizeof(VringState) == 8);

// "A vring address description". The ring addresses are the front-end's virtual addresses,
// translated through the memory table's userspace_addr.
struct VringAddr {
  uint32_t index;
  uint32_t flags;  // bit 0: VHOST_VRING_F_LOG (logging is not supported; ignored)
  uint64_t desc_user_addr;
  uint64_t used_user_addr;
  uint64_t avail_user_addr;
  uint64_t log_guest_addr;
};
static_assert(sizeof(VringAddr) == 40);

// SET_VRING_KICK/CALL/ERR payload: a u64 with the ring index in bits 0-7 and bit 8 set when
// no fd accompanies the message (the front-end then polls or does without).
inline constexpr uint64_t kVringIndexMask = 0xff;
inline constexpr uint64_t kVringNoFd = 1ull << 8;

// "Memory region description".
struct MemoryRegion {
  uint64_t guest_phys_addr;
  uint64_t memory_size;
  uint64_t userspace_addr;
  uint64_t mmap_offset;
};
static_assert(sizeof(MemoryRegion) == 32);

// "Multiple Memory regions description": nregions, padding, then up to kMaxMemRegions regions,
// one fd each (VHOST_MEMORY_BASELINE_NREGIONS; QEMU sends only the used entries).
inline constexpr uint32_t kMaxMemRegions = 8;
struct MemoryTableHeader {
  uint32_t nregions;
  uint32_t padding;
};
static_assert(sizeof(MemoryTableHeader) == 8);

// "Virtio device config space": offset, size, flags, then up to 256 bytes of config.
inline constexpr uint32_t kMaxConfigSize = 256;
struct ConfigHeader {
  uint32_t offset;
  uint32_t size;
  uint32_t flags;
};
static_assert(sizeof(ConfigHeader) == 12);

// The largest payload Vireo accepts: a GET/SET_CONFIG with 256 bytes of config (268) or a full
// memory table (8 + 8 * 32 = 264). A longer one is hostile or from a newer protocol, and the
// connection is closed rather than read into an unbounded buffer.
inline constexpr size_t kMaxPayload = sizeof(ConfigHeader) + kMaxConfigSize;
static_assert(kMaxPayload >= sizeof(MemoryTableHeader) + kMaxMemRegions * sizeof(MemoryRegion));
// At most this many fds per message (one per memory region); more is a protocol violation.
inline constexpr size_t kMaxFds = kMaxMemRegions;

}  // namespace vireo::vhost_user
