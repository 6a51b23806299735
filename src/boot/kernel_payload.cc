#include "boot/kernel_payload.h"

#include <lzma.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <memory>

#include "boot/boot_data.h"

namespace vireo::boot {
namespace {

bool StartsWith(std::span<const uint8_t> data, std::initializer_list<uint8_t> magic) {
  return data.size() >= magic.size() && std::equal(magic.begin(), magic.end(), data.begin());
}

// Output grows in steps of this size, up to the caller's limit.
constexpr size_t kChunk = 4u << 20;

// Makes room for at least one more chunk of output, or fails past `max_size`.
Status Grow(std::vector<uint8_t>& out, size_t used, size_t max_size) {
  if (used >= max_size) {
    return Fail("the kernel payload unpacks to more than {} (guest RAM); the image is corrupt",
                SizeText(max_size));
  }
  out.resize(std::min(max_size, used + kChunk));
  return {};
}

Result<std::vector<uint8_t>> InflateGzip(std::span<const uint8_t> in, size_t max_size) {
  z_stream z{};
  // 16 + MAX_WBITS: a gzip header and trailer, not zlib's.
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK) return Fail("zlib: inflateInit2 failed");
  std::vector<uint8_t> out;
  size_t used = 0;
  z.next_in = const_cast<Bytef*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (used == out.size()) {
      if (auto grown = Grow(out, used, max_size); !grown) {
        inflateEnd(&z);
        return tl::unexpected(grown.error());
      }
    }
    z.next_out = out.data() + used;
    z.avail_out = static_cast<uInt>(out.size() - used);
    rc = inflate(&z, Z_NO_FLUSH);
    used = out.size() - z.avail_out;
    if (rc != Z_OK && rc != Z_STREAM_END) {
      inflateEnd(&z);
      return Fail("gzip kernel payload is corrupt ({}); check the --kernel file",
                  z.msg ? z.msg : "inflate error");
    }
    if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
      inflateEnd(&z);
      return Fail("gzip kernel payload is truncated; check the --kernel file");
    }
  }
  inflateEnd(&z);
  out.resize(used);
  return out;
}

Result<std::vector<uint8_t>> DecodeXz(std::span<const uint8_t> in, size_t max_size) {
  lzma_stream s = LZMA_STREAM_INIT;
  if (lzma_stream_decoder(&s, UINT64_MAX, 0) != LZMA_OK) return Fail("liblzma: init failed");
  std::vector<uint8_t> out;
  size_t used = 0;
  s.next_in = in.data();
  s.avail_in = in.size();
  lzma_ret rc = LZMA_OK;
  while (rc != LZMA_STREAM_END) {
    if (used == out.size()) {
      if (auto grown = Grow(out, used, max_size); !grown) {
        lzma_end(&s);
        return tl::unexpected(grown.error());
      }
    }
    s.next_out = out.data() + used;
    s.avail_out = out.size() - used;
    // LZMA_FINISH: all input is here; a stream that needs more is truncated.
    rc = lzma_code(&s, LZMA_FINISH);
    used = out.size() - s.avail_out;
    if (rc != LZMA_OK && rc != LZMA_STREAM_END && !(rc == LZMA_BUF_ERROR && s.avail_out == 0)) {
      lzma_end(&s);
      return Fail("xz kernel payload is {} (liblzma error {}); check the --kernel file",
                  rc == LZMA_BUF_ERROR ? "truncated" : "corrupt", static_cast<int>(rc));
    }
  }
  lzma_end(&s);
  out.resize(used);
  return out;
}

Result<std::vector<uint8_t>> DecodeZstd(std::span<const uint8_t> in, size_t max_size) {
  struct DStreamFree {
    void operator()(ZSTD_DStream* d) const { ZSTD_freeDStream(d); }
  };
  std::unique_ptr<ZSTD_DStream, DStreamFree> d(ZSTD_createDStream());
  if (!d || ZSTD_isError(ZSTD_initDStream(d.get()))) return Fail("libzstd: init failed");
  std::vector<uint8_t> out;
  ZSTD_inBuffer input{in.data(), in.size(), 0};
  ZSTD_outBuffer output{nullptr, 0, 0};
  while (true) {
    if (output.pos == out.size()) {
      VIREO_TRY_STATUS(Grow(out, output.pos, max_size));
      output.dst = out.data();
      output.size = out.size();
    }
    size_t rc = ZSTD_decompressStream(d.get(), &output, &input);
    if (ZSTD_isError(rc)) {
      return Fail("zstd kernel payload is corrupt ({}); check the --kernel file",
                  ZSTD_getErrorName(rc));
    }
    if (rc == 0) break;  // a frame ended: the payload is one frame
    if (input.pos == input.size && output.pos < out.size()) {
      return Fail("zstd kernel payload is truncated; check the --kernel file");
    }
  }
  out.resize(output.pos);
  return out;
}

}  // namespace

std::string_view PayloadFormatName(PayloadFormat format) {
  switch (format) {
    case PayloadFormat::kGzip:
      return "gzip";
    case PayloadFormat::kXz:
      return "xz";
    case PayloadFormat::kZstd:
      return "zstd";
    case PayloadFormat::kBzip2:
      return "bzip2";
    case PayloadFormat::kLzma:
      return "lzma";
    case PayloadFormat::kLzo:
      return "lzo";
    case PayloadFormat::kLz4:
      return "lz4";
    case PayloadFormat::kUnknown:
      break;
  }
  return "unknown";
}

PayloadFormat DetectPayloadFormat(std::span<const uint8_t> payload) {
  // The magics the kernel's own decompressor dispatch checks (lib/decompress.c).
  if (StartsWith(payload, {0x1f, 0x8b})) return PayloadFormat::kGzip;
  if (StartsWith(payload, {0xfd, '7', 'z', 'X', 'Z', 0x00})) return PayloadFormat::kXz;
  if (StartsWith(payload, {0x28, 0xb5, 0x2f, 0xfd})) return PayloadFormat::kZstd;
  if (StartsWith(payload, {'B', 'Z', 'h'})) return PayloadFormat::kBzip2;
  if (StartsWith(payload, {0x5d, 0x00, 0x00})) return PayloadFormat::kLzma;
  if (StartsWith(payload, {0x89, 0x4c, 0x5a})) return PayloadFormat::kLzo;
  if (StartsWith(payload, {0x02, 0x21})) return PayloadFormat::kLz4;
  return PayloadFormat::kUnknown;
}

bool CanDecompressOnHost(PayloadFormat format) {
  return format == PayloadFormat::kGzip || format == PayloadFormat::kXz ||
         format == PayloadFormat::kZstd;
}

Result<std::vector<uint8_t>> DecompressPayload(std::span<const uint8_t> payload, size_t max_size) {
  switch (DetectPayloadFormat(payload)) {
    case PayloadFormat::kGzip:
      return InflateGzip(payload, max_size);
    case PayloadFormat::kXz:
      return DecodeXz(payload, max_size);
    case PayloadFormat::kZstd:
      return DecodeZstd(payload, max_size);
    default:
      break;
  }
  return Fail("kernel payload is {}; Vireo unpacks gzip, xz and zstd payloads",
              PayloadFormatName(DetectPayloadFormat(payload)));
}

}  // namespace vireo::boot
