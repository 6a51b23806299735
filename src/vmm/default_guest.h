// The guest `vireo run` boots when no --kernel is given: built from tests/guests by our
// own CMake and embedded in the binary.
#pragma once

#include <cstdint>
#include <span>

namespace vireo {

std::span<const uint8_t> DefaultGuestImage();

}  // namespace vireo
