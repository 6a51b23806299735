// vireo img bench [-c COUNT] [-d DEPTH] [-f FMT] [-o OFFSET] [-s SIZE] [-S STEP] [-t CACHE]
//                 [-w] [--pattern=BYTE] [--random] [-q] FILE
// qemu-img bench's I/O benchmark, through the path virtio-blk uses: OpenDiskBackend (RawFile
// on io_uring for raw, ImageBackend's worker threads for qcow2), DEPTH requests in flight,
// completions awaited with poll() on completion_fd(). As in qemu-img 7.2, request n+1 starts
// STEP bytes after request n, modulo the disk size; where that would leave too little room for
// a whole request (7.2 then fails with EIO), Vireo starts again at 0. --random, which qemu-img
// lacks, picks SIZE-aligned offsets uniformly instead (fixed seed: repeatable).
#include <poll.h>
#include <stdlib.h>

#include <fmt/format.h>

#include <chrono>
#include <cstring>
#include <random>

#include "block/backend.h"
#include "block/open_image.h"
#include "img/img_command.h"
#include "img/options.h"

namespace vireo::img {
namespace {

struct BenchArgs {
  int count = 75000;
  int depth = 64;
  std::string format;
  std::string offset = "0";
  std::string size = "4096";
  std::string step;
  std::string cache = "writeback";
  bool write = false;
  int pattern = 0;
  bool random = false;
  bool quiet = false;
  std::string file;
};

struct AlignedFree {
  void operator()(uint8_t* p) const { ::free(p); }
};

class Bench {
 public:
  Bench(block::BlockBackend& backend, const BenchArgs& args, uint64_t start, uint64_t bufsize,
        uint64_t step)
      : backend_(backend), args_(args), offset_(start), bufsize_(bufsize), step_(step) {}

  Status Run() {
    const uint64_t disk = backend_.size();
    if (bufsize_ > disk) return Fail("-s {}: larger than the disk ({} bytes)", bufsize_, disk);
    if (bufsize_ > block::BlockBackend::kMaxRequestBytes)
      return Fail("-s {}: at most 1G", bufsize_);
    const uint64_t align = std::max<uint64_t>(backend_.alignment(), 1);
    if (bufsize_ % align != 0 || offset_ % align != 0 || (step_ % align != 0 && !args_.random)) {
      return Fail("-s/-S/-o must be multiples of {} bytes with -t none (O_DIRECT)", align);
    }
    if (args_.depth < 1 || static_cast<size_t>(args_.depth) > backend_.max_in_flight()) {
      return Fail("-d {}: expected 1 to {}", args_.depth, backend_.max_in_flight());
    }
    if (offset_ > disk - bufsize_) return Fail("-o {}: past the end of the disk", offset_);
    slots_.resize(static_cast<size_t>(args_.depth));
    for (Slot& slot : slots_) {
      void* p = nullptr;
      if (::posix_memalign(&p, 4096, bufsize_) != 0) return Fail("out of memory for buffers");
      slot.buffer.reset(static_cast<uint8_t*>(p));
      std::memset(p, args_.pattern, bufsize_);
      slot.iov = {p, bufsize_};
    }
    backend_.SetCompletionHandler([this](void* cookie, int32_t result) {
      --in_flight_;
      ++completed_;
      if (result < 0 && !error_) error_ = -result;
      if (!error_) SubmitOne(*static_cast<Slot*>(cookie));
    });

    const auto begin = std::chrono::steady_clock::now();
    for (Slot& slot : slots_) SubmitOne(slot);
    while (in_flight_ > 0) {
      pollfd p{backend_.completion_fd(), POLLIN, 0};
      if (::poll(&p, 1, -1) < 0 && errno != EINTR) return Fail("poll: {}", std::strerror(errno));
      backend_.ProcessCompletions();
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
    if (error_) return Fail("Failed request: {}", std::strerror(error_));
    fmt::print("Run completed in {:.3f} seconds.\n", seconds);
    return {};
  }

 private:
  struct Slot {
    std::unique_ptr<uint8_t, AlignedFree> buffer;
    iovec iov{};
  };

  uint64_t NextOffset() {
    if (args_.random) return rng_() % (backend_.size() / bufsize_) * bufsize_;
    uint64_t offset = offset_;
    const uint64_t disk = backend_.size();
    offset_ = (offset_ + step_) % disk;
    if (offset_ > disk - bufsize_) offset_ = 0;
    return offset;
  }

  void SubmitOne(Slot& slot) {
    if (submitted_ >= static_cast<uint64_t>(args_.count)) return;
    block::BlockRequest request;
    request.op = args_.write ? block::BlockRequest::Op::kWrite : block::BlockRequest::Op::kRead;
    request.offset = NextOffset();
    request.iov = std::span<const iovec>(&slot.iov, 1);
    request.cookie = &slot;
    // Never refused: at most depth <= max_in_flight requests are ever out.
    if (!backend_.Submit(request)) {
      error_ = EAGAIN;
      return;
    }
    ++submitted_;
    ++in_flight_;
  }

  block::BlockBackend& backend_;
  const BenchArgs& args_;
  uint64_t offset_;
  const uint64_t bufsize_;
  const uint64_t step_;
  std::mt19937_64 rng_{1};
  std::vector<Slot> slots_;
  uint64_t submitted_ = 0;
  uint64_t completed_ = 0;
  uint64_t in_flight_ = 0;
  int error_ = 0;
};

Status RunBench(const BenchArgs& args) {
  if (args.count < 0) return Fail("-c {}: expected a count of requests", args.count);
  block::ImageOpenOptions options;
  options.format = VIREO_TRY(ParseFormatOption(args.format, "-f"));
  options.read_only = !args.write;
  if (args.cache == "none") {
    options.cache = block::CacheMode::kNone;
  } else if (args.cache != "writeback") {
    return Fail("-t {}: expected none (O_DIRECT) or writeback", args.cache);
  }
  if (args.pattern < 0 || args.pattern > 255)
    return Fail("--pattern {}: expected 0-255", args.pattern);
  const uint64_t bufsize = VIREO_TRY(ParseImgSize(args.size));
  if (bufsize == 0) return Fail("-s 0: requests need at least one byte");
  uint64_t step = args.step.empty() ? 0 : VIREO_TRY(ParseImgSize(args.step));
  if (step == 0) step = bufsize;  // qemu-img: 0 or absent means SIZE.
  const uint64_t start = VIREO_TRY(ParseImgSize(args.offset));
  auto backend = VIREO_TRY(block::OpenDiskBackend(args.file, options));
  if (!args.quiet) {
    const char* op = args.write ? "write" : "read";
    if (args.random) {
      fmt::print("Sending {} {} requests, {} bytes each, {} in parallel (random offsets)\n",
                 args.count, op, bufsize, args.depth);
    } else {
      fmt::print(
          "Sending {} {} requests, {} bytes each, {} in parallel (starting at offset {}, step "
          "size {})\n",
          args.count, op, bufsize, args.depth, start, step);
    }
  }
  Bench bench(*backend, args, start, bufsize, step);
  return bench.Run();
}

}  // namespace

Subcommand AddBench(CLI::App& img) {
  auto args = std::make_shared<BenchArgs>();
  CLI::App* app = img.add_subcommand("bench", "Time sequential (or --random) I/O on an image");
  app->add_option("-c", args->count, "Requests in all (default 75000)");
  app->add_option("-d", args->depth, "Requests in flight at once (default 64)");
  app->add_option("-f", args->format, "Format (default: probed)");
  app->add_option("-o", args->offset, "Offset of the first request (default 0)");
  app->add_option("-s", args->size, "Bytes per request (default 4096)");
  app->add_option("-S", args->step, "Bytes between requests (default: -s)");
  app->add_option("-t", args->cache, "Cache mode: writeback (default) or none (O_DIRECT)");
  app->add_flag("-w", args->write, "Write instead of read");
  app->add_option("--pattern", args->pattern, "Byte written by -w (default 0)");
  app->add_flag("--random", args->random, "Random SIZE-aligned offsets (not in qemu-img)");
  app->add_flag("-q", args->quiet, "Print only the time");
  app->add_option("file", args->file, "Image")->required();
  return {app, [args] {
            auto status = RunBench(*args);
            return status ? kExitOk : ReportError("bench", status.error());
          }};
}

}  // namespace vireo::img
