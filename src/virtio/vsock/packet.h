// virtio-vsock packets (virtio 1.2, 5.10.6 "Device Operation"): the 44-byte
// struct virtio_vsock_hdr, its constants, and the parser that turns a guest transmit
// chain's header into a typed verdict. Pure code: no fds, no device state.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vireo::virtio::vsock {

// 5.10.4: the host's CID is always 2; a guest CID is in [3, 0xffffffff).
inline constexpr uint64_t kHostCid = 2;
inline constexpr uint64_t kMinGuestCid = 3;
inline constexpr uint64_t kMaxGuestCid = 0xfffffffeull;

// 5.10.6: type (only streams: no VIRTIO_VSOCK_F_SEQPACKET).
inline constexpr uint16_t kTypeStream = 1;

// 5.10.6: op.
enum class Op : uint16_t {
  kInvalid = 0,
  kRequest = 1,
  kResponse = 2,
  kRst = 3,
  kShutdown = 4,
  kRw = 5,
  kCreditUpdate = 6,
  kCreditRequest = 7,
};

// 5.10.6.4: VIRTIO_VSOCK_SHUTDOWN_F_RECEIVE / _SEND.
inline constexpr uint32_t kShutdownRcv = 1;
inline constexpr uint32_t kShutdownSend = 2;
inline constexpr uint32_t kShutdownBoth = kShutdownRcv | kShutdownSend;

// The largest payload Vireo accepts from or sends to the guest in one packet.
inline constexpr uint32_t kMaxPayload = 64 * 1024;

// struct virtio_vsock_hdr (5.10.6), little-endian, packed.
struct [[gnu::packed]] Header {
  uint64_t src_cid;
  uint64_t dst_cid;
  uint32_t src_port;
  uint32_t dst_port;
  uint32_t len;
  uint16_t type;
  uint16_t op;
  uint32_t flags;
  uint32_t buf_alloc;
  uint32_t fwd_cnt;
};
static_assert(sizeof(Header) == 44);

// Why a transmitted packet was refused. kNone: valid.
enum class Verdict {
  kNone,
  kShortHeader,  // fewer than 44 readable bytes: dropped
  kWrongCid,     // dst_cid != host or src_cid != guest: dropped (5.10.6.3.1 spirit)
  kBadLength,    // len > readable payload or > kMaxPayload: answered with RST
  kBadType,      // type != STREAM: answered with RST
  kUnknownOp,    // op outside 1..7: answered with RST
};

// Checks a header the guest transmitted in a chain with `readable_len` readable bytes.
Verdict CheckTxHeader(const Header& header, size_t readable_len, uint64_t guest_cid);

// Whether a refused packet deserves an RST reply (it named a plausible peer and was not
// itself an RST, 5.10.6.3: "the other side MUST NOT reply to an RST").
bool RepliesWithRst(Verdict verdict, const Header& header);

// A header from the host (dst = guest) for the given ports and op, no payload.
Header MakeHostHeader(uint64_t guest_cid, uint32_t host_port, uint32_t guest_port, Op op);

}  // namespace vireo::virtio::vsock
