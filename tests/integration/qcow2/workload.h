// Operations on an Image mirrored onto a Reference, and the random workload built from them.
// Each operation checks what the Image contract lets it check on the spot (a discarded range
// reads as zeros or as before; a verify read matches the reference), so a failure names the
// operation that went wrong instead of surfacing as a diff at the end.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/result.h"
#include "block/image.h"
#include "reference.h"

namespace vireo::qcow2test {

// Deterministic bytes for a write: seed identifies the write, so a log line reproduces it.
void FillPattern(std::span<uint8_t> out, uint64_t seed);

// Applies one operation to the image and, when ref is non-null, to the reference.
// Errors name the operation, its range and what differed.
Status DoWrite(block::Image& image, Reference* ref, uint64_t offset, uint64_t length,
               uint64_t seed);
Status DoZero(block::Image& image, Reference* ref, uint64_t offset, uint64_t length);
Status DoDiscard(block::Image& image, Reference* ref, uint64_t offset, uint64_t length);
Status DoVerify(block::Image& image, const Reference& ref, uint64_t offset, uint64_t length);

// Applies a script: one operation per line ("write OFF LEN SEED", "zero OFF LEN",
// "discard OFF LEN", "flush", "resize SIZE", "verify OFF LEN"; '#' starts a comment).
Status RunScript(block::Image& image, Reference& ref, const std::string& script_path);

struct WorkloadOptions {
  uint64_t ops = 5000;  // Operations per thread; 0 with forever.
  uint64_t seed = 1;
  unsigned threads = 1;      // Each owns a disjoint range of the disk.
  bool forever = false;      // Runs until killed (the crash test).
  bool alloc_heavy = false;  // Mostly sequential writes to fresh clusters, and big discards.
  bool flush_at_end = true;
  uint32_t cluster_size = 65536;  // Shapes the sizes and the allocation-heavy mode.
  bool verbose = false;
};

// Runs the random workload. ref may be null (the crash test has no use for one).
Status RunWorkload(block::Image& image, Reference* ref, const WorkloadOptions& options);

}  // namespace vireo::qcow2test
