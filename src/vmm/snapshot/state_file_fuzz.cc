// Fuzz target: the snapshot state file decoder, the parser of the one user-supplied file
// `vireo run --restore` reads. It must refuse or accept without crashing, reading out of
// bounds or allocating without limit; whatever it accepts must encode back to the same bytes.
// Most inputs die at the CRC; the decoder's checks behind it are reached by fixing the header,
// so the fuzzer also tries each input as a payload wrapped in a valid header.
#include <zlib.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "vmm/snapshot/state_file.h"

namespace {

void Check(std::span<const uint8_t> file) {
  auto decoded = vireo::snapshot::DecodeStateFile(file);
  if (!decoded) return;
  // An older version still decodes, but is written back in the current one.
  if (file[8] != vireo::snapshot::kFormatVersion) return;
  const std::vector<uint8_t> again = vireo::snapshot::EncodeStateFile(*decoded);
  if (again.size() != file.size() || std::memcmp(again.data(), file.data(), file.size()) != 0) {
    std::abort();  // accepted, but not what it would write
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Check({data, size});
  std::vector<uint8_t> wrapped(vireo::snapshot::kHeaderSize + size);
  std::memcpy(wrapped.data(), vireo::snapshot::kMagic, 8);
  wrapped[8] = vireo::snapshot::kFormatVersion;
  const uint32_t n = static_cast<uint32_t>(size);
  const uint32_t crc =
      static_cast<uint32_t>(crc32(crc32(0, Z_NULL, 0), data, static_cast<uInt>(size)));
  for (int i = 0; i < 4; ++i) {
    wrapped[16 + i] = static_cast<uint8_t>(n >> (8 * i));
    wrapped[20 + i] = static_cast<uint8_t>(crc >> (8 * i));
  }
  if (size > 0) std::memcpy(wrapped.data() + vireo::snapshot::kHeaderSize, data, size);
  Check(wrapped);
  return 0;
}
