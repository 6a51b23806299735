// The qcow2 on-disk layout (QEMU docs/interop/qcow2.txt): constants and big-endian helpers.
// Every multi-byte field on disk is big-endian.
#pragma once

#include <cstdint>
#include <cstring>

namespace vireo::block::qcow2 {

inline constexpr uint32_t kMagic = 0x514649fb;   // "QFI\xfb"
inline constexpr uint32_t kMinClusterBits = 9;   // 512 B
inline constexpr uint32_t kMaxClusterBits = 21;  // 2 MiB
inline constexpr uint32_t kV2HeaderLength = 72;
inline constexpr uint32_t kV3HeaderLength = 112;  // With the compression type, padded to 8.

// Incompatible feature bits (header byte 72).
inline constexpr uint64_t kIncompatDirty = 1ull << 0;
inline constexpr uint64_t kIncompatCorrupt = 1ull << 1;
inline constexpr uint64_t kIncompatExternalData = 1ull << 2;
inline constexpr uint64_t kIncompatCompressionType = 1ull << 3;
inline constexpr uint64_t kIncompatExtendedL2 = 1ull << 4;
// Compatible feature bits.
inline constexpr uint64_t kCompatLazyRefcounts = 1ull << 0;
// Autoclear feature bits.
inline constexpr uint64_t kAutoclearBitmaps = 1ull << 0;
inline constexpr uint64_t kAutoclearRawExternal = 1ull << 1;

// Header extension types.
inline constexpr uint32_t kExtEnd = 0;
inline constexpr uint32_t kExtBackingFormat = 0xe2792aca;
inline constexpr uint32_t kExtFeatureNames = 0x6803f857;
inline constexpr uint32_t kExtBitmaps = 0x23852875;
inline constexpr uint32_t kExtExternalData = 0x44415441;

// L1 and L2 entries.
inline constexpr uint64_t kOflagCopied = 1ull << 63;  // Refcount is exactly 1: write in place.
inline constexpr uint64_t kOflagCompressed = 1ull << 62;
inline constexpr uint64_t kOflagZero = 1ull << 0;  // Standard L2 entry: reads as zeros.
inline constexpr uint64_t kL1OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kL2OffsetMask = 0x00fffffffffffe00ull;
inline constexpr uint64_t kL1ReservedMask = 0x7f000000000001ffull;
inline constexpr uint64_t kL2ReservedMask = 0x3f000000000001feull;

// Upper bounds Vireo sets on what an image may claim, so a hostile header cannot make us
// allocate without limit (QEMU has the same caps).
inline constexpr uint64_t kMaxL1Bytes = 32ull << 20;
inline constexpr uint64_t kMaxRefcountTableBytes = 8ull << 20;
inline constexpr uint32_t kMaxSnapshots = 65536;
inline constexpr uint64_t kMaxDiskSize = 1ull << 55;  // Far beyond any real disk; < 2^63.

// A compressed cluster's L2 entry (qcow2.txt, "Compressed Clusters Descriptor"): the data
// starts at `offset` and occupies the 512-byte sectors from the one holding it; refcounts
// count every cluster touching [span_start, span_start + span_length).
struct CompressedRange {
  uint64_t offset;
  uint64_t span_start;
  uint64_t span_length;
};
inline CompressedRange DecodeCompressed(uint64_t entry, uint32_t cluster_bits) {
  const uint32_t x = 62 - (cluster_bits - 8);
  const uint64_t offset = entry & ((1ull << x) - 1);
  const uint64_t sectors = ((entry >> x) & ((1ull << (cluster_bits - 8)) - 1)) + 1;
  return {offset, offset & ~511ull, sectors * 512};
}
inline uint64_t EncodeCompressed(uint64_t offset, uint64_t length, uint32_t cluster_bits) {
  const uint32_t x = 62 - (cluster_bits - 8);
  const uint64_t extra_sectors = (offset + length - 1) / 512 - offset / 512;
  return kOflagCompressed | (extra_sectors << x) | offset;
}

inline uint16_t LoadBe16(const uint8_t* p) { return static_cast<uint16_t>(p[0] << 8 | p[1]); }
inline uint32_t LoadBe32(const uint8_t* p) {
  return uint32_t{p[0]} << 24 | uint32_t{p[1]} << 16 | uint32_t{p[2]} << 8 | p[3];
}
inline uint64_t LoadBe64(const uint8_t* p) { return uint64_t{LoadBe32(p)} << 32 | LoadBe32(p + 4); }
inline void StoreBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
inline void StoreBe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (24 - 8 * i));
}
inline void StoreBe64(uint8_t* p, uint64_t v) {
  StoreBe32(p, static_cast<uint32_t>(v >> 32));
  StoreBe32(p + 4, static_cast<uint32_t>(v));
}

}  // namespace vireo::block::qcow2
