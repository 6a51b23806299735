// The `-p` progress line of `vireo img convert` and `commit`: "    (42.00/100%)" rewritten in
// place with '\r', as qemu-img prints it, and a newline when the work ends. Vireo writes it
// to stderr so that stdout stays clean for what a script may parse.
#pragma once

#include <cstdint>
#include <cstdio>
#include <mutex>

namespace vireo::img {

class Progress {
 public:
  // Disabled: every call is a no-op. min_step: percent the value must grow by before the line
  // is rewritten (qemu-img uses 1), so a fast copy does not flood a slow terminal.
  Progress(bool enabled, std::FILE* out, double min_step_percent = 1.0)
      : enabled_(enabled), out_(out), min_step_(min_step_percent) {}
  ~Progress() { Finish(); }
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Starts the line at 0% for a job of `total` units (bytes, say).
  void Start(uint64_t total);
  // Adds finished units; thread-safe, so copy workers report directly.
  void Add(uint64_t units);
  // Prints 100% (once) and ends the line.
  void Finish();

 private:
  void PrintLocked(double percent);

  const bool enabled_;
  std::FILE* const out_;
  const double min_step_;
  std::mutex mutex_;
  uint64_t total_ = 0;     // Guarded by mutex_.
  uint64_t done_ = 0;      // Guarded by mutex_.
  double printed_ = -1.0;  // Guarded by mutex_; the last value shown, -1 before Start.
  bool finished_ = false;  // Guarded by mutex_.
};

}  // namespace vireo::img
