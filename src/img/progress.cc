#include "img/progress.h"

#include <algorithm>

namespace vireo::img {

void Progress::Start(uint64_t total) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  total_ = total;
  done_ = 0;
  finished_ = false;
  PrintLocked(0.0);
}

void Progress::Add(uint64_t units) {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  if (finished_ || printed_ < 0) return;
  done_ = std::min(total_, done_ + units);
  // An empty job is complete as soon as it starts; Finish prints its 100%.
  double percent = total_ == 0 ? 100.0 : 100.0 * static_cast<double>(done_) / total_;
  // 100% is left to Finish, so it prints exactly once, followed by the newline.
  if (percent < 100.0 && percent - printed_ >= min_step_) PrintLocked(percent);
}

void Progress::Finish() {
  if (!enabled_) return;
  std::lock_guard lock(mutex_);
  if (finished_ || printed_ < 0) return;
  finished_ = true;
  PrintLocked(100.0);
  std::fputc('\n', out_);
  std::fflush(out_);
}

void Progress::PrintLocked(double percent) {
  printed_ = percent;
  std::fprintf(out_, "    (%3.2f/100%%)\r", percent);
  std::fflush(out_);
}

}  // namespace vireo::img
