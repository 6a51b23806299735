// vireo img convert [-f FMT] [-O FMT] [-c] [-p] [-q] [-m THREADS] [-o OPTIONS] SRC DST
// Any format to any format. Sparse-aware twice over: Image::Map skips what the source does not
// store (holes, zero clusters), and stored bytes that are all zeros are not written either,
// checked per destination cluster (qcow2) or 4 KiB block (raw), so DST stays sparse.
// Several threads read and check the source at once. Writes into qcow2 stay in guest order
// (as qemu-img's default), so the new image's clusters lie in order on the host; with -c they
// may go in any order, since compressing each cluster is the work worth spreading.
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "block/raw_image.h"
#include "img/img_command.h"
#include "img/img_open.h"
#include "img/options.h"
#include "img/progress.h"

namespace vireo::img {
namespace {

constexpr uint64_t kBufferBytes = 2 << 20;
constexpr uint64_t kRawZeroGranule = 4096;

struct ConvertArgs {
  std::string src_format;
  std::string dst_format = "raw";
  bool compress = false;
  bool progress = false;
  bool quiet = false;
  unsigned threads = 4;
  std::vector<std::string> options;
  std::string src;
  std::string dst;
};

struct Range {
  uint64_t offset;
  uint64_t length;
};

bool AllZero(const uint8_t* p, size_t n) {
  return n == 0 || (p[0] == 0 && std::memcmp(p, p + 1, n - 1) == 0);
}

// The stretches of SRC that may hold non-zero bytes, widened to whole granules (so a qcow2
// cluster is never split between two workers) and cut into buffer-sized pieces.
Result<std::vector<Range>> PlanCopy(block::Image& src, uint64_t granule) {
  std::vector<Range> wide;
  const uint64_t size = src.size();
  const std::vector<block::Image*> chain = BackingChain(src);
  for (uint64_t offset = 0; offset < size;) {
    // Whichever layer of the chain holds the bytes: the new image holds them all.
    block::Extent e = VIREO_TRY(MapThrough(chain, offset, size - offset)).extent;
    if (e.kind == block::Extent::Kind::kData) {
      uint64_t start = offset / granule * granule;
      uint64_t end = std::min(size, (offset + e.length + granule - 1) / granule * granule);
      if (!wide.empty() && wide.back().offset + wide.back().length >= start) {
        wide.back().length =
            std::max(wide.back().offset + wide.back().length, end) - wide.back().offset;
      } else {
        wide.push_back({start, end - start});
      }
    }
    offset += e.length;
  }
  std::vector<Range> pieces;
  const uint64_t piece = std::max<uint64_t>(kBufferBytes / granule, 1) * granule;
  for (const Range& r : wide) {
    for (uint64_t off = 0; off < r.length; off += piece) {
      pieces.push_back({r.offset + off, std::min(piece, r.length - off)});
    }
  }
  return pieces;
}

class Copier {
 public:
  Copier(block::Image& src, block::Image& dst, block::qcow2::Qcow2Image* compress_into,
         uint64_t granule, bool ordered, std::vector<Range> pieces, Progress& progress)
      : src_(src),
        dst_(dst),
        compress_into_(compress_into),
        granule_(granule),
        ordered_(ordered),
        pieces_(std::move(pieces)),
        progress_(progress) {}

  Status Run(unsigned threads) {
    threads = std::clamp<unsigned>(threads, 1, 64);
    std::vector<std::thread> workers;
    for (unsigned i = 1; i < threads; ++i) workers.emplace_back([this] { Work(); });
    Work();
    for (auto& w : workers) w.join();
    if (error_) return tl::unexpected(*error_);
    return {};
  }

 private:
  void Work() {
    std::vector<uint8_t> buffer(kBufferBytes);
    for (;;) {
      size_t index = next_.fetch_add(1);
      if (index >= pieces_.size() || failed_.load()) return;
      const Range& piece = pieces_[index];
      auto data = std::span(buffer).first(piece.length);
      Status status = ToStatus(src_.Read(piece.offset, data));
      if (status && ordered_) status = WaitTurn(index);
      if (status) status = WritePiece(piece.offset, data);
      if (ordered_) EndTurn(index);
      if (!status) {
        Abort(status.error());
        return;
      }
      progress_.Add(piece.length);
    }
  }

  // Writes the non-zero granules of one piece, each run of them in one call.
  Status WritePiece(uint64_t offset, std::span<const uint8_t> data) {
    size_t run_start = 0;
    size_t run_length = 0;
    for (size_t at = 0; at < data.size(); at += granule_) {
      size_t n = std::min<size_t>(granule_, data.size() - at);
      if (AllZero(data.data() + at, n)) continue;
      if (compress_into_ != nullptr) {
        VIREO_TRY_STATUS(WriteCompressed(offset + at, data.subspan(at, n)));
        continue;
      }
      if (run_length > 0 && run_start + run_length == at) {
        run_length += n;
        continue;
      }
      if (run_length > 0) {
        VIREO_TRY_STATUS(
            ToStatus(dst_.Write(offset + run_start, data.subspan(run_start, run_length))));
      }
      run_start = at;
      run_length = n;
    }
    if (run_length > 0) {
      VIREO_TRY_STATUS(
          ToStatus(dst_.Write(offset + run_start, data.subspan(run_start, run_length))));
    }
    return {};
  }

  Status WriteCompressed(uint64_t offset, std::span<const uint8_t> cluster) {
    if (cluster.size() == granule_)
      return ToStatus(compress_into_->WriteCompressed(offset, cluster));
    // The disk's last cluster, cut short by its end: qemu pads it with zeros to a whole
    // cluster. Should the image refuse a cluster reaching past the end, store it plainly.
    std::vector<uint8_t> padded(granule_, 0);
    std::memcpy(padded.data(), cluster.data(), cluster.size());
    if (compress_into_->WriteCompressed(offset, padded)) return {};
    return ToStatus(dst_.Write(offset, cluster));
  }

  Status WaitTurn(size_t index) {
    std::unique_lock lock(mutex_);
    turn_changed_.wait(lock, [&] { return next_write_ == index || failed_.load(); });
    if (failed_.load()) return Fail("stopped after another error");
    return {};
  }
  void EndTurn(size_t index) {
    std::lock_guard lock(mutex_);
    if (next_write_ == index) ++next_write_;
    turn_changed_.notify_all();
  }
  void Abort(const Error& error) {
    std::lock_guard lock(mutex_);
    if (!error_) error_ = error;
    failed_ = true;
    turn_changed_.notify_all();
  }

  block::Image& src_;
  block::Image& dst_;
  block::qcow2::Qcow2Image* const compress_into_;
  const uint64_t granule_;
  const bool ordered_;
  const std::vector<Range> pieces_;
  Progress& progress_;
  std::atomic<size_t> next_{0};
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::condition_variable turn_changed_;
  size_t next_write_ = 0;       // Guarded by mutex_.
  std::optional<Error> error_;  // Guarded by mutex_.
};

Status Convert(const ConvertArgs& args) {
  OpenRequest request;
  request.path = args.src;
  request.format = VIREO_TRY(ParseFormatOption(args.src_format, "-f"));
  OpenedImage src = VIREO_TRY(OpenImg(request));
  auto dst_format = VIREO_TRY(ParseFormatOption(args.dst_format, "-O"));
  if (dst_format == block::ImageFormat::kAuto) dst_format = block::ImageFormat::kRaw;
  if (args.compress && dst_format != block::ImageFormat::kQcow2) {
    return Fail("-c: compression needs a qcow2 destination (-O qcow2)");
  }
  CreateSettings settings =
      VIREO_TRY(ParseCreateOptions(JoinOptionTexts(args.options), dst_format));
  if (!settings.qcow2.backing_file.empty()) {
    return Fail("-o backing_file: convert does not write overlays yet; convert the whole chain");
  }
  const uint64_t size = src.image->size();

  uint64_t granule = kRawZeroGranule;
  if (dst_format == block::ImageFormat::kQcow2) {
    settings.qcow2.size = size;
    VIREO_TRY_STATUS(block::qcow2::Qcow2Image::Create(args.dst, settings.qcow2));
    granule = settings.qcow2.cluster_size;
  } else {
    VIREO_TRY_STATUS(block::RawImage::Create(args.dst, size));
  }
  OpenRequest dst_request;
  dst_request.path = args.dst;
  dst_request.format = dst_format;
  dst_request.read_only = false;
  OpenedImage dst = VIREO_TRY(OpenImg(dst_request));

  std::vector<Range> pieces = VIREO_TRY(PlanCopy(*src.image, granule));
  uint64_t to_copy = 0;
  for (const Range& r : pieces) to_copy += r.length;

  Progress progress(args.progress && !args.quiet, stderr);
  progress.Start(size);
  progress.Add(size - to_copy);  // What the map skipped is done already.
  const bool ordered = dst_format == block::ImageFormat::kQcow2 && !args.compress;
  Copier copier(*src.image, *dst.image, args.compress ? dst.qcow2 : nullptr, granule, ordered,
                std::move(pieces), progress);
  VIREO_TRY_STATUS(copier.Run(args.threads));
  VIREO_TRY_STATUS(ToStatus(dst.image->Flush()));
  progress.Finish();
  return {};
}

}  // namespace

Subcommand AddConvert(CLI::App& img) {
  auto args = std::make_shared<ConvertArgs>();
  CLI::App* app = img.add_subcommand("convert", "Copy an image into a new one, of any format");
  app->add_option("-f", args->src_format, "Source format (default: probed)");
  app->add_option("-O", args->dst_format, "Destination format: raw (default) or qcow2");
  app->add_flag("-c", args->compress, "Compress every cluster (qcow2 destination)");
  app->add_flag("-p", args->progress, "Show progress on stderr");
  app->add_flag("-q", args->quiet, "Quiet");
  app->add_option("-m", args->threads, "Threads copying at once (default 4)");
  app->add_option("-o", args->options, "Destination options, as for create")
      ->allow_extra_args(false);
  app->add_option("src", args->src, "Source image")->required();
  app->add_option("dst", args->dst, "Destination image (created or overwritten)")->required();
  return {app, [args] {
            auto status = Convert(*args);
            return status ? kExitOk : ReportError("convert", status.error());
          }};
}

}  // namespace vireo::img
