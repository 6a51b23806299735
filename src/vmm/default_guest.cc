#include "vmm/default_guest.h"

extern "C" const uint8_t vireo_default_guest_start[];
extern "C" const uint8_t vireo_default_guest_end[];

namespace vireo {

std::span<const uint8_t> DefaultGuestImage() {
  return {vireo_default_guest_start, vireo_default_guest_end};
}

}  // namespace vireo
