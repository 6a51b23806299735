// A virtio-blk device from a --disk configuration: the one place `vireo run` and
// `vireo vhost-user blk` open the image (format probed or given) and build the device.
#pragma once

#include <memory>

#include "base/event_loop.h"
#include "base/result.h"
#include "virtio/blk.h"
#include "vmm/vm_config.h"

namespace vireo {

Result<std::unique_ptr<virtio::Blk>> CreateBlkDevice(const DiskConfig& disk, EventLoop& loop);

}  // namespace vireo
