// The control API's routes over a VmController (documented in docs/api.yaml):
//
//   GET /api/v1/vm            state and configuration summary
//   GET /api/v1/vm/counters   exits per reason per vCPU, per-device I/O counters
//   PUT /api/v1/vm/pause      park every vCPU, drain and stop device I/O
//   PUT /api/v1/vm/resume     undo pause
//   PUT /api/v1/vm/shutdown   press the ACPI power button
//   PUT /api/v1/vm/reset      restart the VM (as a guest reset)
//   PUT /api/v1/vm/stop       end the VMM now (exit status 0)
//
// A refused action is 409 {"error": reason}; one that failed is 500.
#pragma once

#include <string_view>

#include "api/router.h"
#include "vmm/vm_controller.h"

namespace vireo::api {

inline constexpr std::string_view kApiPrefix = "/api/v1";

// `controller` must outlive the router.
void AddVmRoutes(Router& router, VmController& controller);

}  // namespace vireo::api
