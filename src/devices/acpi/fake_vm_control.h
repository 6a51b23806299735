// A VmControl that records stop requests, for device unit tests.
#pragma once

#include <vector>

#include "devices/vm_control.h"

namespace vireo {

class FakeVmControl : public VmControl {
 public:
  struct Request {
    StopKind kind;
    int exit_status;
  };
  void RequestStop(StopKind kind, int exit_status) override {
    requests.push_back({kind, exit_status});
  }
  std::vector<Request> requests;
};

}  // namespace vireo
