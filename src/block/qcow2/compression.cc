#include "block/qcow2/compression.h"

#include <zlib.h>
#include <zstd.h>

namespace vireo::block::qcow2 {
namespace {

constexpr int kZlibWindowBits = -12;  // Raw deflate, 4 KiB window: what QEMU uses.

bool InflateZlib(std::span<const uint8_t> in, std::span<uint8_t> out) {
  z_stream s{};
  if (inflateInit2(&s, kZlibWindowBits) != Z_OK) return false;
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  int rc = inflate(&s, Z_FINISH);
  const bool ok = (rc == Z_STREAM_END || rc == Z_BUF_ERROR || rc == Z_OK) && s.avail_out == 0;
  inflateEnd(&s);
  return ok;
}

bool DecompressZstd(std::span<const uint8_t> in, std::span<uint8_t> out) {
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  if (ctx == nullptr) return false;
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  ZSTD_outBuffer output{out.data(), out.size(), 0};
  bool ok = false;
  // Bounded: each call either makes progress or reports an error or the end of the frame.
  for (int i = 0; i < 1 << 16; ++i) {
    size_t rc = ZSTD_decompressStream(ctx, &output, &input);
    if (ZSTD_isError(rc)) break;
    if (output.pos == output.size) {
      ok = true;
      break;
    }
    if (rc == 0 || input.pos == input.size) break;  // Frame ended short, or input ran out.
  }
  ZSTD_freeDCtx(ctx);
  return ok;
}

}  // namespace

bool Decompress(CompressionType type, std::span<const uint8_t> in, std::span<uint8_t> out) {
  return type == CompressionType::kZstd ? DecompressZstd(in, out) : InflateZlib(in, out);
}

size_t Compress(CompressionType type, std::span<const uint8_t> in, std::span<uint8_t> out) {
  if (type == CompressionType::kZstd) {
    size_t rc = ZSTD_compress(out.data(), out.size(), in.data(), in.size(), ZSTD_CLEVEL_DEFAULT);
    return ZSTD_isError(rc) ? 0 : rc;
  }
  z_stream s{};
  if (deflateInit2(&s, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kZlibWindowBits, 9, Z_DEFAULT_STRATEGY) !=
      Z_OK) {
    return 0;
  }
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out.data();
  s.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&s, Z_FINISH);
  size_t produced = out.size() - s.avail_out;
  deflateEnd(&s);
  return rc == Z_STREAM_END ? produced : 0;
}

}  // namespace vireo::block::qcow2
