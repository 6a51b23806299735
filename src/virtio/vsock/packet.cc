#include "virtio/vsock/packet.h"

namespace vireo::virtio::vsock {

Verdict CheckTxHeader(const Header& header, size_t readable_len, uint64_t guest_cid) {
  if (readable_len < sizeof(Header)) return Verdict::kShortHeader;
  if (header.dst_cid != kHostCid || header.src_cid != guest_cid) return Verdict::kWrongCid;
  if (header.len > kMaxPayload || header.len > readable_len - sizeof(Header)) {
    return Verdict::kBadLength;
  }
  if (header.type != kTypeStream) return Verdict::kBadType;
  if (header.op < static_cast<uint16_t>(Op::kRequest) ||
      header.op > static_cast<uint16_t>(Op::kCreditRequest)) {
    return Verdict::kUnknownOp;
  }
  return Verdict::kNone;
}

bool RepliesWithRst(Verdict verdict, const Header& header) {
  switch (verdict) {
    case Verdict::kNone:
    case Verdict::kShortHeader:
    case Verdict::kWrongCid:
      return false;
    case Verdict::kBadLength:
    case Verdict::kBadType:
    case Verdict::kUnknownOp:
      return header.op != static_cast<uint16_t>(Op::kRst);
  }
  return false;
}

Header MakeHostHeader(uint64_t guest_cid, uint32_t host_port, uint32_t guest_port, Op op) {
  Header header{};
  header.src_cid = kHostCid;
  header.dst_cid = guest_cid;
  header.src_port = host_port;
  header.dst_port = guest_port;
  header.type = kTypeStream;
  header.op = static_cast<uint16_t>(op);
  return header;
}

}  // namespace vireo::virtio::vsock
