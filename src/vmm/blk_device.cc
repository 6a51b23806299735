#include "vmm/blk_device.h"

#include "block/open_image.h"

namespace vireo {

Result<std::unique_ptr<virtio::Blk>> CreateBlkDevice(const DiskConfig& disk, EventLoop& loop) {
  block::ImageOpenOptions open;
  open.format = disk.format;
  open.read_only = disk.read_only;
  open.cache = disk.cache_none ? block::CacheMode::kNone : block::CacheMode::kWriteback;
  open.discard = disk.discard;
  auto backend = block::OpenDiskBackend(disk.path, open);
  if (!backend) return Wrap(fmt::format("--disk path={}", disk.path), backend.error());
  auto blk = virtio::Blk::Create(std::move(*backend), {disk.serial, disk.discard}, loop);
  if (!blk) return Wrap(fmt::format("--disk path={}", disk.path), blk.error());
  return std::move(*blk);
}

}  // namespace vireo
