#include "vmm/migration/stream.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "vmm/snapshot/state_codec.h"
#include "vmm/snapshot/state_file.h"

namespace vireo::migration {
namespace {

uint32_t Crc32(std::span<const uint8_t> data) {
  return static_cast<uint32_t>(::crc32(0L, data.data(), static_cast<uInt>(data.size())));
}

uint32_t LoadLe32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

void StoreLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// The largest payload each frame type may carry.
size_t MaxPayload(FrameType type) {
  switch (type) {
    case FrameType::kHello:
      return 8 + kMaxRegions * 16;
    case FrameType::kPages:
      return 4 + size_t{kPagesPerBatch} * (9 + kPageSize);
    case FrameType::kState:
      return snapshot::kMaxStateFileSize;
    case FrameType::kEnd:
      return 0;
    case FrameType::kAck:
      return 8 + kMaxAckMessage;
    case FrameType::kDisks:
      return 8 + kMaxDisks * 8;
    case FrameType::kDiskChunk:
      return kDiskChunkHeader + kDiskChunkSize;
    case FrameType::kPostcopy:
      return 8 + (kMaxRamBytes / kPageSize + 7) / 8;
    case FrameType::kPageRequest:
      return 4 + size_t{kPagesPerBatch} * 8;
  }
  return 0;
}

const char* FrameName(FrameType type) {
  switch (type) {
    case FrameType::kHello:
      return "HELLO";
    case FrameType::kPages:
      return "PAGES";
    case FrameType::kState:
      return "STATE";
    case FrameType::kEnd:
      return "END";
    case FrameType::kAck:
      return "ACK";
    case FrameType::kDisks:
      return "DISKS";
    case FrameType::kDiskChunk:
      return "DISK_CHUNK";
    case FrameType::kPostcopy:
      return "POSTCOPY";
    case FrameType::kPageRequest:
      return "PAGE_REQUEST";
  }
  return "?";
}

struct AddrInfoDeleter {
  void operator()(addrinfo* info) const { ::freeaddrinfo(info); }
};

Result<std::unique_ptr<addrinfo, AddrInfoDeleter>> Resolve(const TcpAddress& address,
                                                           bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = passive ? AI_PASSIVE : 0;
  addrinfo* found = nullptr;
  const char* host = address.host.empty() ? nullptr : address.host.c_str();
  if (int rc = ::getaddrinfo(host, address.port.c_str(), &hints, &found); rc != 0) {
    return Fail("cannot resolve {}:{}: {}", address.host, address.port, ::gai_strerror(rc));
  }
  return std::unique_ptr<addrinfo, AddrInfoDeleter>(found);
}

}  // namespace

Result<TcpAddress> ParseUri(const std::string& uri) {
  constexpr std::string_view kScheme = "tcp:";
  if (uri.rfind(kScheme, 0) != 0) {
    return Fail("migration URI '{}': expected tcp:HOST:PORT (only TCP is supported)", uri);
  }
  std::string rest = uri.substr(kScheme.size());
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon + 1 == rest.size()) {
    return Fail("migration URI '{}': expected tcp:HOST:PORT", uri);
  }
  TcpAddress address{rest.substr(0, colon), rest.substr(colon + 1)};
  if (address.host.size() >= 2 && address.host.front() == '[' && address.host.back() == ']') {
    address.host = address.host.substr(1, address.host.size() - 2);
  }
  if (address.port.find_first_not_of("0123456789") != std::string::npos ||
      address.port.size() > 5 || std::stoi(address.port) > 65535) {
    return Fail("migration URI '{}': port '{}' is not a number from 0 to 65535", uri, address.port);
  }
  return address;
}

void SetTimeouts(int fd, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

Result<UniqueFd> Connect(const TcpAddress& address, int timeout_ms) {
  auto list = VIREO_TRY(Resolve(address, false));
  std::string last_error = "no address";
  for (addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      last_error = std::strerror(errno);
      continue;
    }
    SetTimeouts(fd.get(), timeout_ms);  // SO_SNDTIMEO bounds connect() too
    if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0) {
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      return fd;
    }
    last_error = std::strerror(errno);
  }
  return Fail("cannot connect to {}:{}: {} (is `vireo run --incoming` listening there?)",
              address.host, address.port, last_error);
}

Result<UniqueFd> Listen(const TcpAddress& address) {
  auto list = VIREO_TRY(Resolve(address, true));
  std::string last_error = "no address";
  for (addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      last_error = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd.get(), 1) == 0) {
      return fd;
    }
    last_error = std::strerror(errno);
  }
  return Fail("cannot listen on {}:{}: {}", address.host, address.port, last_error);
}

Status SendAll(int fd, std::span<const uint8_t> data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return Fail("sending timed out (the peer stopped reading)");
      }
      return Fail("sending: {}", std::strerror(errno));
    }
    data = data.subspan(static_cast<size_t>(n));
  }
  return {};
}

Status ReceiveAll(int fd, std::span<uint8_t> out) {
  while (!out.empty()) {
    ssize_t n = ::recv(fd, out.data(), out.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return Fail("receiving timed out (the peer stopped sending)");
      }
      return Fail("receiving: {}", std::strerror(errno));
    }
    if (n == 0) return Fail("the peer closed the connection");
    out = out.subspan(static_cast<size_t>(n));
  }
  return {};
}

std::vector<uint8_t> EncodeFrame(FrameType type, std::span<const uint8_t> payload) {
  std::vector<uint8_t> frame(kFrameHeaderSize + payload.size());
  StoreLe32(frame.data(), static_cast<uint32_t>(type));
  StoreLe32(frame.data() + 4, static_cast<uint32_t>(payload.size()));
  StoreLe32(frame.data() + 8, Crc32(payload));
  // An empty payload's data() may be null, which memcpy must not get even for 0 bytes.
  if (!payload.empty()) {
    std::memcpy(frame.data() + kFrameHeaderSize, payload.data(), payload.size());
  }
  return frame;
}

Result<Frame> ReadFrame(int fd) {
  uint8_t header[kFrameHeaderSize];
  VIREO_TRY_STATUS(ReceiveAll(fd, header));
  const uint32_t raw_type = LoadLe32(header);
  if (raw_type < static_cast<uint32_t>(FrameType::kHello) ||
      raw_type > static_cast<uint32_t>(FrameType::kPageRequest)) {
    return Fail("corrupt migration stream: unknown frame type {}", raw_type);
  }
  Frame frame;
  frame.type = static_cast<FrameType>(raw_type);
  const uint32_t size = LoadLe32(header + 4);
  if (size > MaxPayload(frame.type)) {
    return Fail("corrupt migration stream: a {} frame of {} bytes (at most {})",
                FrameName(frame.type), size, MaxPayload(frame.type));
  }
  frame.payload.resize(size);
  VIREO_TRY_STATUS(ReceiveAll(fd, frame.payload));
  const uint32_t crc = Crc32(frame.payload);
  if (crc != LoadLe32(header + 8)) {
    return Fail(
        "corrupt migration stream: a {} frame's CRC-32 is {:#010x}, its header says {:#010x}",
        FrameName(frame.type), crc, LoadLe32(header + 8));
  }
  return frame;
}

std::vector<uint8_t> EncodePreamble() {
  std::vector<uint8_t> out(kMagic, kMagic + sizeof(kMagic));
  out.resize(12);
  StoreLe32(out.data() + 8, kVersion);
  return out;
}

Status CheckPreamble(std::span<const uint8_t> preamble) {
  if (preamble.size() != 12 || std::memcmp(preamble.data(), kMagic, sizeof(kMagic)) != 0) {
    return Fail("not a Vireo migration stream (no VIREOMIG magic)");
  }
  const uint32_t version = LoadLe32(preamble.data() + 8);
  if (version != kVersion) {
    return Fail("migration stream version {}; this vireo speaks version {} only", version,
                kVersion);
  }
  return {};
}

std::vector<uint8_t> EncodeHello(std::span<const RamRange> ram) {
  snapshot::StateWriter w;
  w.U32(static_cast<uint32_t>(kPageSize));
  w.U32(static_cast<uint32_t>(ram.size()));
  for (const RamRange& range : ram) {
    w.U64(range.base);
    w.U64(range.size);
  }
  return w.Take();
}

Result<std::vector<RamRange>> DecodeHello(std::span<const uint8_t> payload) {
  snapshot::StateReader r(payload);
  const uint32_t page_size = r.U32();
  const size_t count = r.Count(kMaxRegions, "RAM regions");
  std::vector<RamRange> ram(count);
  for (RamRange& range : ram) {
    range.base = r.U64();
    range.size = r.U64();
    if (r.ok() && (range.size == 0 || range.base % kPageSize != 0 || range.size % kPageSize != 0 ||
                   range.base + range.size < range.base)) {
      r.Invalid(fmt::format("RAM region {:#x}+{:#x} is not page-aligned and non-empty", range.base,
                            range.size));
    }
  }
  if (r.ok() && page_size != kPageSize) {
    r.Invalid(fmt::format("page size {} (this vireo uses {})", page_size, kPageSize));
  }
  if (r.ok() && ram.empty()) r.Invalid("no RAM regions");
  uint64_t total = 0;
  for (const RamRange& range : ram) {
    // Bounded one region at a time, so the sum cannot wrap.
    if (r.ok() && (range.size > kMaxRamBytes || total + range.size > kMaxRamBytes)) {
      r.Invalid(fmt::format("more than {} GiB of RAM", kMaxRamBytes >> 30));
    }
    total += range.size;
  }
  VIREO_TRY_STATUS(r.Finish("the HELLO frame"));
  return ram;
}

std::vector<uint8_t> EncodeAck(uint32_t status, const std::string& message) {
  snapshot::StateWriter w;
  w.U32(status);
  w.String(message.substr(0, kMaxAckMessage));
  return w.Take();
}

Result<Ack> DecodeAck(std::span<const uint8_t> payload) {
  snapshot::StateReader r(payload);
  Ack ack;
  ack.status = r.U32();
  ack.message = r.String(kMaxAckMessage);
  VIREO_TRY_STATUS(r.Finish("the ACK frame"));
  return ack;
}

Result<uint64_t> ForEachPage(
    std::span<const uint8_t> payload, uint64_t total_pages,
    const std::function<Status(uint64_t, std::span<const uint8_t>)>& place) {
  if (payload.size() < 4) return Fail("corrupt migration stream: a PAGES frame without a count");
  const uint32_t count = LoadLe32(payload.data());
  if (count > kPagesPerBatch) {
    return Fail("corrupt migration stream: {} pages in a batch (at most {})", count,
                kPagesPerBatch);
  }
  size_t pos = 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (payload.size() - pos < 9)
      return Fail("corrupt migration stream: a PAGES frame is cut short");
    uint64_t page = 0;
    std::memcpy(&page, payload.data() + pos, 8);  // little-endian hosts only (x86-64)
    const uint8_t kind = payload[pos + 8];
    pos += 9;
    if (page >= total_pages) {
      return Fail("corrupt migration stream: page {} is beyond the VM's {} pages", page,
                  total_pages);
    }
    if (kind > static_cast<uint8_t>(PageKind::kData)) {
      return Fail("corrupt migration stream: page kind {}", kind);
    }
    std::span<const uint8_t> data;
    if (kind == static_cast<uint8_t>(PageKind::kData)) {
      if (payload.size() - pos < kPageSize) {
        return Fail("corrupt migration stream: a page's data is cut short");
      }
      data = payload.subspan(pos, kPageSize);
      pos += kPageSize;
    }
    VIREO_TRY_STATUS(place(page, data));
  }
  if (pos != payload.size()) {
    return Fail("corrupt migration stream: {} unexpected bytes after a PAGES frame's pages",
                payload.size() - pos);
  }
  return count;
}

Result<uint64_t> ApplyPages(std::span<const uint8_t> payload, const GuestMemory& memory) {
  static const std::vector<uint8_t> kZeroPage(kPageSize, 0);
  return ForEachPage(
      payload, memory.total_size() / kPageSize,
      [&](uint64_t page, std::span<const uint8_t> data) -> Status {
        // Page numbers count RAM in HELLO's region order, as the snapshot memory file does.
        uint64_t offset = page * kPageSize;
        GuestAddress addr = 0;
        for (const GuestMemory::Region& region : memory.regions()) {
          if (offset < region.range.size) {
            addr = region.range.base + offset;
            break;
          }
          offset -= region.range.size;
        }
        if (!memory.Write(addr, data.empty() ? std::span<const uint8_t>(kZeroPage) : data)) {
          return Fail("writing migrated page {} at {:#x} failed", page, addr);
        }
        return {};
      });
}

std::vector<uint8_t> EncodePostcopy(std::span<const uint64_t> missing, uint64_t total_pages) {
  std::vector<uint8_t> out(8 + (total_pages + 7) / 8, 0);
  std::memcpy(out.data(), &total_pages, 8);  // little-endian hosts only (x86-64)
  for (uint64_t page : missing) {
    if (page < total_pages) out[8 + page / 8] |= static_cast<uint8_t>(1u << (page % 8));
  }
  return out;
}

Result<std::vector<uint64_t>> DecodePostcopy(std::span<const uint8_t> payload,
                                             uint64_t total_pages) {
  if (payload.size() < 8) return Fail("corrupt migration stream: a POSTCOPY frame is cut short");
  uint64_t count = 0;
  std::memcpy(&count, payload.data(), 8);
  if (count != total_pages) {
    return Fail("corrupt migration stream: POSTCOPY covers {} pages, the VM has {}", count,
                total_pages);
  }
  if (payload.size() != 8 + (total_pages + 7) / 8) {
    return Fail("corrupt migration stream: a POSTCOPY frame of {} bytes for {} pages",
                payload.size(), total_pages);
  }
  std::vector<uint64_t> bitmap((total_pages + 63) / 64, 0);
  for (size_t i = 0; i < payload.size() - 8; ++i) {
    bitmap[i / 8] |= uint64_t{payload[8 + i]} << (8 * (i % 8));
  }
  if (total_pages % 64 != 0 && (bitmap.back() >> (total_pages % 64)) != 0) {
    return Fail("corrupt migration stream: POSTCOPY marks pages beyond the VM's {}", total_pages);
  }
  return bitmap;
}

std::vector<uint8_t> EncodePageRequest(std::span<const uint64_t> pages) {
  snapshot::StateWriter w;
  w.U32(static_cast<uint32_t>(pages.size()));
  for (uint64_t page : pages) w.U64(page);
  return w.Take();
}

Result<std::vector<uint64_t>> DecodePageRequest(std::span<const uint8_t> payload,
                                                uint64_t total_pages) {
  snapshot::StateReader r(payload);
  const size_t count = r.Count(kPagesPerBatch, "requested pages");
  std::vector<uint64_t> pages(count);
  for (uint64_t& page : pages) {
    page = r.U64();
    if (r.ok() && page >= total_pages) {
      r.Invalid(fmt::format("page {} is beyond the VM's {} pages", page, total_pages));
    }
  }
  if (r.ok() && pages.empty()) r.Invalid("no pages");
  VIREO_TRY_STATUS(r.Finish("the PAGE_REQUEST frame"));
  return pages;
}

std::vector<uint8_t> EncodeDisks(std::span<const uint64_t> sizes) {
  snapshot::StateWriter w;
  w.U32(kDiskChunkSize);
  w.U32(static_cast<uint32_t>(sizes.size()));
  for (uint64_t size : sizes) w.U64(size);
  return w.Take();
}

Result<std::vector<uint64_t>> DecodeDisks(std::span<const uint8_t> payload) {
  snapshot::StateReader r(payload);
  const uint32_t chunk = r.U32();
  const size_t count = r.Count(kMaxDisks, "disks");
  std::vector<uint64_t> sizes(count);
  for (uint64_t& size : sizes) size = r.U64();
  if (r.ok() && chunk != kDiskChunkSize) {
    r.Invalid(fmt::format("disk chunk size {} (this vireo uses {})", chunk, kDiskChunkSize));
  }
  VIREO_TRY_STATUS(r.Finish("the DISKS frame"));
  return sizes;
}

std::vector<uint8_t> EncodeDiskChunk(uint32_t disk, uint64_t offset, std::span<const uint8_t> data,
                                     uint32_t zero_length) {
  const bool zero = data.empty();
  std::vector<uint8_t> out(kDiskChunkHeader + data.size());
  StoreLe32(out.data(), disk);
  std::memcpy(out.data() + 4, &offset, 8);  // little-endian hosts only (x86-64)
  out[12] = static_cast<uint8_t>(zero ? PageKind::kZero : PageKind::kData);
  StoreLe32(out.data() + 13, zero ? zero_length : static_cast<uint32_t>(data.size()));
  if (!zero) std::memcpy(out.data() + kDiskChunkHeader, data.data(), data.size());
  return out;
}

Result<uint64_t> ApplyDiskChunk(std::span<const uint8_t> payload,
                                std::span<block::Image* const> disks) {
  if (payload.size() < kDiskChunkHeader) {
    return Fail("corrupt migration stream: a DISK_CHUNK frame is cut short");
  }
  const uint32_t disk = LoadLe32(payload.data());
  uint64_t offset = 0;
  std::memcpy(&offset, payload.data() + 4, 8);
  const uint8_t kind = payload[12];
  const uint32_t length = LoadLe32(payload.data() + 13);
  if (disk >= disks.size()) {
    return Fail("corrupt migration stream: a chunk of disk {}, but the source announced {} disks",
                disk, disks.size());
  }
  block::Image& image = *disks[disk];
  const uint64_t size = image.size();
  if (offset % kDiskChunkSize != 0 || offset >= size) {
    return Fail("corrupt migration stream: a chunk at offset {} of disk {} ({} bytes)", offset,
                disk, size);
  }
  const uint64_t expected = std::min<uint64_t>(kDiskChunkSize, size - offset);
  if (length != expected) {
    return Fail("corrupt migration stream: a {}-byte chunk at offset {} of disk {} (expected {})",
                length, offset, disk, expected);
  }
  if (kind > static_cast<uint8_t>(PageKind::kData)) {
    return Fail("corrupt migration stream: disk chunk kind {}", kind);
  }
  const bool zero = kind == static_cast<uint8_t>(PageKind::kZero);
  const size_t data_size = zero ? 0 : length;
  if (payload.size() != kDiskChunkHeader + data_size) {
    return Fail("corrupt migration stream: a DISK_CHUNK frame of {} bytes for a {}-byte chunk",
                payload.size(), length);
  }
  // Zeros are written too: the destination image need not be empty.
  auto written = zero ? image.WriteZeroes(offset, length)
                      : image.Write(offset, payload.subspan(kDiskChunkHeader, length));
  if (!written) {
    return Fail("writing disk {} at offset {}: {}", disk, offset, written.error().message);
  }
  return length;
}

}  // namespace vireo::migration
