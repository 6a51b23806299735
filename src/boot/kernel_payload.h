// A bzImage's compressed payload (boot.rst "payload_offset"/"payload_length"): the vmlinux
// ELF that the kernel's own decompressor unpacks in the guest. Vireo can unpack it on the
// host instead, which matters on the software CPU: there the guest's xz decompressor runs
// interpreted for minutes, while liblzma on the host takes well under a second.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace vireo::boot {

// The formats Linux can build a bzImage with (CONFIG_KERNEL_*), told apart by their magic.
enum class PayloadFormat { kGzip, kXz, kZstd, kBzip2, kLzma, kLzo, kLz4, kUnknown };
std::string_view PayloadFormatName(PayloadFormat format);

PayloadFormat DetectPayloadFormat(std::span<const uint8_t> payload);

// Whether DecompressPayload can unpack this format (gzip, xz, zstd).
bool CanDecompressOnHost(PayloadFormat format);

// Unpacks a gzip, xz or zstd payload. Stops at the end of the first compressed stream (the
// kernel's build appends the uncompressed size after it) and refuses output beyond
// `max_size`, so a hostile image cannot exhaust host memory.
Result<std::vector<uint8_t>> DecompressPayload(std::span<const uint8_t> payload, size_t max_size);

}  // namespace vireo::boot
