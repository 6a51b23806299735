// virtio_blk: the block device (virtio 1.2 section 5.2) over virtio-mmio or virtio-pci (chosen as
// runtime/virtio_transport.h says: virtio.transport=pci|mmio on the cmdline). Finds device id 2,
// reads the capacity from config space, reads the first sectors, asks for the serial (GET_ID),
// writes a pattern to a cmdline-given range, flushes, reads it back, and checks that requests the
// device must refuse (past the end; a write to a read-only disk) end with VIRTIO_BLK_S_IOERR.
//
// Cmdline:
//   vblk.write=START,COUNT  write sectors START..START+COUNT-1, sector k filled with the byte
//                           (k & 0xff) ^ 0xa5 (tests/integration/virtio_blk_test.sh checks the
//                           file)
//   vblk.read=N             sectors read at the start (default 8, at most the capacity)
//   vblk.expect_ro=1        the disk is read-only: VIRTIO_BLK_F_RO must be offered and a write to
//                           sector 0 must fail with IOERR and change nothing
//   vblk.mode=poll          poll the used ring instead of waiting for interrupts
//   vblk.indirect=1, vblk.event_idx=1   negotiate and use INDIRECT_DESC / EVENT_IDX
//
// Prints "capacity: N sectors", "sector 0: <16 bytes as text>", "serial: <id>", "wrote sectors
// A-B", "verified sectors A-B", "out-of-range read: IOERR". Exit: debug-exit 0 (status 1) after
// "PASS virtio_blk". Failures (debug-exit value -> status):
//   3 -> 7   no block device            9 -> 19   read-back mismatch
//   4 -> 9   initialisation failed     10 -> 21   GET_ID failed
//   5 -> 11  a request did not complete (timeout, needs reset, no interrupt)
//   6 -> 13  a read failed             11 -> 23   an out-of-range read did not end with IOERR
//   7 -> 15  a write failed            12 -> 25   a write to a read-only disk did not end with
//   IOERR 8 -> 17  a flush failed            13 -> 27   vblk.expect_ro=1 but VIRTIO_BLK_F_RO not
//   offered
//  14 -> 29  bad vblk.write range      15 -> 31   a refused write changed the disk
#include "runtime.h"
#include "virtio.h"

namespace {

using rt::virtio::Buffer;
using rt::virtio::Device;
using rt::virtio::Error;

constexpr const char* kName = "virtio_blk";

// 5.2.3 feature bits, 5.2.6 request types and status values.
constexpr uint64_t kBlkFRo = 1ull << 5;
constexpr uint64_t kBlkFFlush = 1ull << 9;
constexpr uint32_t kBlkTIn = 0;
constexpr uint32_t kBlkTOut = 1;
constexpr uint32_t kBlkTFlush = 4;
constexpr uint32_t kBlkTGetId = 8;
constexpr uint8_t kBlkSOk = 0;
constexpr uint8_t kBlkSIoErr = 1;
constexpr uint8_t kBlkSUnsupp = 2;
constexpr uint32_t kSector = 512;
constexpr uint32_t kIdBytes = 20;
constexpr uint64_t kChunk = 8;  // sectors per request
constexpr uint64_t kMaxWrite = 65536;

struct BlkReqHeader {
  uint32_t type;
  uint32_t reserved;
  uint64_t sector;
};

Device blk;
BlkReqHeader header;
volatile uint8_t status;
alignas(4096) uint8_t data[kChunk * kSector];
uint8_t sector0[kSector];
char serial[kIdBytes + 1];
bool use_indirect;

bool Flag(const rt::BootInfo& info, const char* key, const char* want) {
  char v[16];
  if (!rt::CmdlineValue(info, key, v, sizeof(v))) return false;
  for (int i = 0;; ++i) {
    if (v[i] != want[i]) return false;
    if (!v[i]) return true;
  }
}

// Parses decimal digits at *p; false if there are none.
bool ParseDecimal(const char** p, uint64_t* out) {
  uint64_t v = 0;
  const char* s = *p;
  while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
  if (s == *p) return false;
  *p = s;
  *out = v;
  return true;
}

const char* StatusName(uint8_t s) {
  switch (s) {
    case kBlkSOk:
      return "OK";
    case kBlkSIoErr:
      return "IOERR";
    case kBlkSUnsupp:
      return "UNSUPP";
    default:
      return "no status written";
  }
}

// One request: header, optional data, status (5.2.6). Returns the status byte; a transport
// failure ends the test.
uint8_t Request(uint32_t type, uint64_t sector, void* buf, uint32_t len, bool device_writes) {
  header = {type, 0, sector};
  status = 0xff;
  Buffer bufs[3];
  int n = 0;
  bufs[n++] = rt::virtio::Out(&header, sizeof(header));
  if (len) bufs[n++] = {reinterpret_cast<uint64_t>(buf), len, device_writes};
  bufs[n++] = rt::virtio::In(const_cast<uint8_t*>(&status), 1);
  Error e = blk.Transfer(0, bufs, n, nullptr, use_indirect);
  if (e != Error::kOk) {
    rt::Printf("request type %u sector %lu: %s (device status %#x)\n", type, sector,
               rt::virtio::ErrorName(e), blk.Status());
    rt::Fail(kName, 5, "request did not complete");
  }
  return status;
}

uint8_t PatternByte(uint64_t sector) { return static_cast<uint8_t>((sector & 0xff) ^ 0xa5); }

// Fills (or checks) `count` sectors of `data` with the pattern for sectors from `first`.
void FillPattern(uint64_t first, uint64_t count) {
  auto* words = reinterpret_cast<uint64_t*>(data);
  for (uint64_t s = 0; s < count; ++s) {
    uint64_t w = PatternByte(first + s) * 0x0101010101010101ull;
    for (uint32_t i = 0; i < kSector / 8; ++i) words[s * kSector / 8 + i] = w;
  }
}

bool CheckPattern(uint64_t first, uint64_t count, uint64_t* bad_sector) {
  auto* words = reinterpret_cast<const uint64_t*>(data);
  for (uint64_t s = 0; s < count; ++s) {
    uint64_t w = PatternByte(first + s) * 0x0101010101010101ull;
    for (uint32_t i = 0; i < kSector / 8; ++i) {
      if (words[s * kSector / 8 + i] != w) {
        *bad_sector = first + s;
        return false;
      }
    }
  }
  return true;
}

void ReadFirstSectors(uint64_t count) {
  for (uint64_t s = 0; s < count; s += kChunk) {
    uint64_t n = count - s < kChunk ? count - s : kChunk;
    uint8_t st = Request(kBlkTIn, s, data, static_cast<uint32_t>(n * kSector), true);
    if (st != kBlkSOk) {
      rt::Printf("read sector %lu: %s\n", s, StatusName(st));
      rt::Fail(kName, 6, "read failed");
    }
    if (s == 0) {
      for (uint32_t i = 0; i < kSector; ++i) sector0[i] = data[i];
    }
  }
  char text[17];
  for (int i = 0; i < 16; ++i) {
    text[i] = sector0[i] >= 0x20 && sector0[i] < 0x7f ? static_cast<char>(sector0[i]) : '.';
  }
  text[16] = 0;
  rt::Printf("sector 0: %s\n", text);
  rt::Printf("read sectors 0-%lu\n", count - 1);
}

void GetId() {
  uint8_t st = Request(kBlkTGetId, 0, serial, kIdBytes, true);
  serial[kIdBytes] = 0;  // 5.2.6: not NUL-terminated when all 20 bytes are used
  if (st == kBlkSUnsupp) {
    rt::Printf("serial: (unsupported)\n");
  } else if (st == kBlkSOk) {
    rt::Printf("serial: %s\n", serial);
  } else {
    rt::Printf("GET_ID: %s\n", StatusName(st));
    rt::Fail(kName, 10, "GET_ID failed");
  }
}

void WriteAndVerify(uint64_t start, uint64_t count) {
  for (uint64_t s = 0; s < count; s += kChunk) {
    uint64_t n = count - s < kChunk ? count - s : kChunk;
    FillPattern(start + s, n);
    uint8_t st = Request(kBlkTOut, start + s, data, static_cast<uint32_t>(n * kSector), false);
    if (st != kBlkSOk) {
      rt::Printf("write sector %lu: %s\n", start + s, StatusName(st));
      rt::Fail(kName, 7, "write failed");
    }
  }
  rt::Printf("wrote sectors %lu-%lu\n", start, start + count - 1);
  if (blk.Has(kBlkFFlush)) {
    uint8_t st = Request(kBlkTFlush, 0, nullptr, 0, false);
    if (st != kBlkSOk) {
      rt::Printf("flush: %s\n", StatusName(st));
      rt::Fail(kName, 8, "flush failed");
    }
    rt::Printf("flushed\n");
  }
  for (uint64_t s = 0; s < count; s += kChunk) {
    uint64_t n = count - s < kChunk ? count - s : kChunk;
    for (uint32_t i = 0; i < n * kSector; ++i) data[i] = 0;
    uint8_t st = Request(kBlkTIn, start + s, data, static_cast<uint32_t>(n * kSector), true);
    if (st != kBlkSOk) {
      rt::Printf("read back sector %lu: %s\n", start + s, StatusName(st));
      rt::Fail(kName, 6, "read failed");
    }
    uint64_t bad;
    if (!CheckPattern(start + s, n, &bad)) {
      rt::Printf("sector %lu does not hold the pattern %#x\n", bad, PatternByte(bad));
      rt::Fail(kName, 9, "read-back mismatch");
    }
  }
  rt::Printf("verified sectors %lu-%lu\n", start, start + count - 1);
}

void WriteReadOnly() {
  if (!(blk.offered_features() & kBlkFRo)) rt::Fail(kName, 13, "VIRTIO_BLK_F_RO not offered");
  FillPattern(0, 1);
  uint8_t st = Request(kBlkTOut, 0, data, kSector, false);
  rt::Printf("write to read-only disk: %s\n", StatusName(st));
  if (st != kBlkSIoErr) rt::Fail(kName, 12, "write to a read-only disk did not end with IOERR");
  st = Request(kBlkTIn, 0, data, kSector, true);
  if (st != kBlkSOk) rt::Fail(kName, 6, "read failed");
  for (uint32_t i = 0; i < kSector; ++i) {
    if (data[i] != sector0[i]) rt::Fail(kName, 15, "a refused write changed sector 0");
  }
}

void ReadOutOfRange(uint64_t capacity) {
  uint8_t st = Request(kBlkTIn, capacity, data, kSector, true);
  rt::Printf("out-of-range read: %s\n", StatusName(st));
  if (st != kBlkSIoErr) rt::Fail(kName, 11, "a read past the end did not end with IOERR");
  if (capacity == 0) return;
  st = Request(kBlkTIn, capacity - 1, data, 2 * kSector, true);
  rt::Printf("read across the end: %s\n", StatusName(st));
  if (st != kBlkSIoErr) rt::Fail(kName, 11, "a read across the end did not end with IOERR");
}

}  // namespace

int GuestMain(const rt::BootInfo& info) {
  rt::virtio::Location slot;
  if (!rt::virtio::FindDevice(info, rt::virtio::kDeviceBlock, slot)) {
    rt::Fail(kName, 3, "no virtio block device");
  }
  Device::Options options = {};
  options.wanted_features = kBlkFFlush | kBlkFRo;
  options.mode = Flag(info, "vblk.mode", "poll") ? rt::virtio::WaitMode::kPoll
                                                 : rt::virtio::WaitMode::kInterrupt;
  use_indirect = Flag(info, "vblk.indirect", "1");
  if (use_indirect) options.wanted_features |= rt::virtio::kFeatureIndirectDesc;
  if (Flag(info, "vblk.event_idx", "1")) options.wanted_features |= rt::virtio::kFeatureEventIdx;
  Error e = blk.Init(slot, options);
  if (e != Error::kOk) {
    rt::Printf("init: %s\n", rt::virtio::ErrorName(e));
    rt::Fail(kName, 4, "initialisation failed");
  }
  uint64_t capacity = blk.Config64(0);  // 5.2.4: capacity in 512-byte sectors
  rt::Printf("virtio-blk features: offered %#lx accepted %#lx, %s mode\n", blk.offered_features(),
             blk.features(), options.mode == rt::virtio::WaitMode::kPoll ? "poll" : "interrupt");
  rt::Printf("capacity: %lu sectors%s%s\n", capacity,
             blk.offered_features() & kBlkFRo ? ", read-only" : "",
             blk.Has(kBlkFFlush) ? ", flush" : "");

  uint64_t to_read = 8;
  char arg[48];
  if (rt::CmdlineValue(info, "vblk.read", arg, sizeof(arg))) {
    const char* p = arg;
    ParseDecimal(&p, &to_read);
  }
  if (to_read > capacity) to_read = capacity;
  if (to_read) ReadFirstSectors(to_read);
  GetId();

  if (Flag(info, "vblk.expect_ro", "1")) {
    WriteReadOnly();
  } else if (rt::CmdlineValue(info, "vblk.write", arg, sizeof(arg))) {
    const char* p = arg;
    uint64_t start, count;
    if (!ParseDecimal(&p, &start) || *p++ != ',' || !ParseDecimal(&p, &count) || *p || count == 0 ||
        count > kMaxWrite || start > capacity || count > capacity - start) {
      rt::Fail(kName, 14, "bad vblk.write=START,COUNT (or past the capacity)");
    }
    WriteAndVerify(start, count);
  }
  ReadOutOfRange(capacity);
  rt::Printf("interrupts: %u\n", blk.interrupts());
  rt::Pass(kName);
}
