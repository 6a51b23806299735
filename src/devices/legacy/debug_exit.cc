#include "devices/legacy/debug_exit.h"

namespace vireo {

void DebugExit::Read(uint64_t, std::span<uint8_t> data) {
  for (auto& byte : data) byte = 0;
}

void DebugExit::Write(uint64_t, std::span<const uint8_t> data) {
  // Little-endian value of the access, whatever its width; bytes past 4 are ignored, as the
  // port is at most 32 bits wide.
  uint32_t value = 0;
  for (size_t i = 0; i < data.size() && i < 4; ++i) value |= uint32_t{data[i]} << (8 * i);
  vm_.RequestStop(StopKind::kDebugExit, ExitStatus(value));
}

}  // namespace vireo
