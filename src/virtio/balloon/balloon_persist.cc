// virtio-balloon snapshot state (balloon_state.h).
#include "virtio/balloon/balloon.h"

namespace vireo::virtio::balloon {

BalloonSavedState Balloon::SaveState() const {
  std::lock_guard lock(mu_);
  BalloonSavedState state;
  state.num_pages = config_.num_pages;
  state.actual = config_.actual;
  state.stats_head = stats_head_;
  state.stats = stats_;
  return state;
}

Status Balloon::RestoreState(const BalloonSavedState& state) {
  std::lock_guard lock(mu_);
  if (active_ || registered_) return Fail("virtio-balloon: restoring into an active device");
  // The queue re-checks the head against its size when the buffer is given back.
  if (state.stats_head && *state.stats_head >= kQueueSize) {
    return Fail("virtio-balloon: stats buffer head {} beyond the queue's {} descriptors",
                *state.stats_head, kQueueSize);
  }
  if (state.stats.size() > kMaxStats) {
    return Fail("virtio-balloon: {} statistics (at most {})", state.stats.size(), kMaxStats);
  }
  config_.num_pages = state.num_pages;
  config_.actual = state.actual;
  stats_head_ = state.stats_head;
  stats_.assign(state.stats.begin(), state.stats.end());  // within the reserved capacity
  return {};
}

}  // namespace vireo::virtio::balloon
