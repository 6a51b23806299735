// Compressed clusters: zlib (raw deflate, 4 KiB window, as QEMU writes it) and zstd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "block/qcow2/header.h"

namespace vireo::block::qcow2 {

// Fills out exactly from in. Returns false when in is not valid data for the type or does not
// produce out.size() bytes. Trailing bytes after the stream are ignored (the on-disk range is
// rounded up to sectors).
bool Decompress(CompressionType type, std::span<const uint8_t> in, std::span<uint8_t> out);

// Compresses in into out; returns the compressed size, or 0 when it does not fit in out.
size_t Compress(CompressionType type, std::span<const uint8_t> in, std::span<uint8_t> out);

}  // namespace vireo::block::qcow2
