#include "workload.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

namespace vireo::qcow2test {
namespace {

constexpr uint64_t kSector = 512;

std::string Where(std::string_view op, uint64_t offset, uint64_t length) {
  return fmt::format("{} offset {} length {}", op, offset, length);
}

// The first byte where a and b differ, as text; empty when equal.
std::string FirstDifference(std::span<const uint8_t> got, std::span<const uint8_t> want,
                            uint64_t base) {
  auto [g, w] = std::mismatch(got.begin(), got.end(), want.begin());
  if (g == got.end()) return "";
  uint64_t at = static_cast<uint64_t>(g - got.begin());
  uint64_t end = at;
  while (end < got.size() && got[end] != want[end]) ++end;
  return fmt::format(
      "first difference at disk offset {} (image 0x{:02x}, reference 0x{:02x}), "
      "{} differing bytes from there",
      base + at, *g, *w, end - at);
}

}  // namespace

void FillPattern(std::span<uint8_t> out, uint64_t seed) {
  // splitmix64: cheap, and different writes never look alike.
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
  size_t i = 0;
  while (i < out.size()) {
    x += 0x9e3779b97f4a7c15ull;
    uint64_t z = x;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    for (int k = 0; k < 8 && i < out.size(); ++k, ++i) out[i] = static_cast<uint8_t>(z >> (8 * k));
  }
}

Status DoWrite(block::Image& image, Reference* ref, uint64_t offset, uint64_t length,
               uint64_t seed) {
  std::vector<uint8_t> data(length);
  FillPattern(data, seed);
  if (auto r = image.Write(offset, data); !r) {
    return Fail("{} seed {}: {}", Where("write", offset, length), seed, r.error().message);
  }
  if (ref != nullptr) std::copy(data.begin(), data.end(), ref->bytes(offset, length).begin());
  return {};
}

Status DoZero(block::Image& image, Reference* ref, uint64_t offset, uint64_t length) {
  if (auto r = image.WriteZeroes(offset, length); !r) {
    return Fail("{}: {}", Where("write-zeroes", offset, length), r.error().message);
  }
  if (ref != nullptr) std::ranges::fill(ref->bytes(offset, length), 0);
  return {};
}

Status DoDiscard(block::Image& image, Reference* ref, uint64_t offset, uint64_t length) {
  if (auto r = image.Discard(offset, length); !r) {
    return Fail("{}: {}", Where("discard", offset, length), r.error().message);
  }
  if (ref == nullptr) return {};
  // The contract lets a discarded range read as zeros or as before. Check that per sector of
  // the range (a format frees whole clusters, so a sector is either freed or untouched), then
  // take what the image reads as the new reference.
  std::vector<uint8_t> got(length);
  if (auto r = image.Read(offset, got); !r) {
    return Fail("read after {}: {}", Where("discard", offset, length), r.error().message);
  }
  std::span<uint8_t> want = ref->bytes(offset, length);
  uint64_t pos = 0;
  while (pos < length) {
    uint64_t next = std::min(length, (offset + pos) / kSector * kSector + kSector - offset);
    std::span<const uint8_t> g(got.data() + pos, next - pos);
    bool zeros = std::ranges::all_of(g, [](uint8_t b) { return b == 0; });
    bool before = std::equal(g.begin(), g.end(), want.begin() + static_cast<ptrdiff_t>(pos));
    if (!zeros && !before) {
      return Fail("after {}: disk offset {} reads neither as zeros nor as before: {}",
                  Where("discard", offset, length), offset + pos,
                  FirstDifference(g, want.subspan(pos, next - pos), offset + pos));
    }
    pos = next;
  }
  std::ranges::copy(got, want.begin());
  return {};
}

Status DoVerify(block::Image& image, const Reference& ref, uint64_t offset, uint64_t length) {
  std::vector<uint8_t> got(length);
  if (auto r = image.Read(offset, got); !r) {
    return Fail("{}: {}", Where("read", offset, length), r.error().message);
  }
  std::string diff = FirstDifference(got, ref.bytes(offset, length), offset);
  if (!diff.empty())
    return Fail("{}: content differs from the reference: {}", Where("read", offset, length), diff);
  return {};
}

Status RunScript(block::Image& image, Reference& ref, const std::string& script_path) {
  std::ifstream in(script_path);
  if (!in) return Fail("cannot open script '{}'", script_path);
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    line = line.substr(0, line.find('#'));
    std::istringstream words(line);
    std::string op;
    if (!(words >> op)) continue;
    uint64_t a = 0, b = 0, c = 0;
    words >> a >> b >> c;
    Status s;
    // The Image contract leaves range checks to callers; a bad script line must not become a
    // wild write into the reference mapping.
    bool ranged = op == "write" || op == "zero" || op == "discard" || op == "verify";
    if (ranged && (b > ref.size() || a > ref.size() - b)) {
      return Fail("{}:{}: {} {} {} lies outside the disk ({} bytes)", script_path, number, op, a, b,
                  ref.size());
    }
    if (op == "write") {
      s = DoWrite(image, &ref, a, b, c);
    } else if (op == "zero") {
      s = DoZero(image, &ref, a, b);
    } else if (op == "discard") {
      s = DoDiscard(image, &ref, a, b);
    } else if (op == "verify") {
      s = DoVerify(image, ref, a, b);
    } else if (op == "flush") {
      if (auto r = image.Flush(); !r) s = Fail("flush: {}", r.error().message);
    } else if (op == "resize") {
      if (auto r = image.Resize(a); !r) {
        s = Fail("resize to {}: {}", a, r.error().message);
      } else if (image.size() != a) {
        s = Fail("resize to {}: the image now says its size is {}", a, image.size());
      } else {
        s = ref.Resize(a);
      }
    } else {
      s = Fail("unknown operation '{}'", op);
    }
    if (!s) return Fail("{}:{}: {}", script_path, number, s.error().message);
  }
  return {};
}

namespace {

// One thread's share of the workload over [lo, hi).
class Worker {
 public:
  Worker(block::Image& image, Reference* ref, const WorkloadOptions& options, unsigned index,
         uint64_t lo, uint64_t hi)
      : image_(image),
        ref_(ref),
        options_(options),
        index_(index),
        lo_(lo),
        hi_(hi),
        rng_(options.seed * 1000003 + index),
        cursor_(lo) {}

  Status Run(const std::atomic<bool>& stop) {
    for (uint64_t n = 0; options_.forever || n < options_.ops; ++n) {
      if (stop.load(std::memory_order_relaxed)) return {};
      if (auto s = Step(n); !s) {
        return Fail("thread {} (range {}..{}) operation {}: {}", index_, lo_, hi_, n,
                    s.error().message);
      }
      if (n == 100 && index_ == 0 && options_.forever) {
        // The crash test waits for this line, so the kill lands mid-workload, not at start-up.
        std::printf("workload running\n");
        std::fflush(stdout);
      }
    }
    return {};
  }

 private:
  uint64_t Uniform(uint64_t lo, uint64_t hi) {  // [lo, hi]
    return std::uniform_int_distribution<uint64_t>(lo, hi)(rng_);
  }

  // A length from a mix of sizes: sub-sector, around a cluster, and large requests.
  uint64_t RandomLength() {
    uint64_t span = hi_ - lo_;
    uint64_t len;
    switch (Uniform(0, 9)) {
      case 0:
      case 1:
      case 2:
        len = Uniform(1, 4096);
        break;
      case 3:
      case 4:
      case 5:
      case 6:
        len = Uniform(1, 4 * uint64_t{options_.cluster_size});
        break;
      default:
        len = Uniform(1, 1 << 19);
    }
    return std::min(len, span);
  }

  // Half the requests are sector-aligned (what guests send); the rest are byte-granular.
  std::pair<uint64_t, uint64_t> RandomRange() {
    uint64_t len = RandomLength();
    uint64_t off = Uniform(lo_, hi_ - len);
    if (Uniform(0, 1) == 0) {
      uint64_t a = (off + kSector - 1) / kSector * kSector;
      uint64_t l = len / kSector * kSector;
      if (l > 0 && a + l <= hi_) return {a, l};
    }
    return {off, len};
  }

  Status Step(uint64_t n) {
    uint64_t op_seed = (options_.seed << 32) ^ (uint64_t{index_} << 24) ^ n;
    if (options_.alloc_heavy) return AllocStep(op_seed);
    auto [off, len] = RandomRange();
    uint64_t pick = Uniform(0, 99);
    if (options_.verbose)
      std::fprintf(stderr, "t%u op %lu pick %lu off %lu len %lu\n", index_,
                   static_cast<unsigned long>(n), static_cast<unsigned long>(pick),
                   static_cast<unsigned long>(off), static_cast<unsigned long>(len));
    if (pick < 55) return DoWrite(image_, ref_, off, len, op_seed);
    if (pick < 70) return DoZero(image_, ref_, off, len);
    if (pick < 82) return DoDiscard(image_, ref_, off, len);
    if (pick < 98) return ref_ != nullptr ? DoVerify(image_, *ref_, off, len) : Status{};
    if (auto r = image_.Flush(); !r) return Fail("flush: {}", r.error().message);
    return {};
  }

  // Sequential cluster writes that keep allocating (L2 tables, refcount blocks), with big
  // discards behind the cursor so freed clusters get reused.
  Status AllocStep(uint64_t op_seed) {
    uint64_t cluster = options_.cluster_size;
    uint64_t pick = Uniform(0, 99);
    if (pick < 75) {
      uint64_t len = std::min(cluster * Uniform(1, 8), hi_ - lo_);
      if (cursor_ + len > hi_) cursor_ = lo_;
      Status s = DoWrite(image_, ref_, cursor_, len, op_seed);
      cursor_ += len;
      return s;
    }
    uint64_t len = std::min(Uniform(1, 64) * cluster, hi_ - lo_);
    uint64_t off = lo_ + Uniform(0, (hi_ - lo_ - len) / cluster) * cluster;
    if (pick < 92) return DoDiscard(image_, ref_, off, len);
    return DoZero(image_, ref_, off, len);
  }

  block::Image& image_;
  Reference* ref_;
  const WorkloadOptions& options_;
  unsigned index_;
  uint64_t lo_, hi_;
  std::mt19937_64 rng_;
  uint64_t cursor_;
};

}  // namespace

Status RunWorkload(block::Image& image, Reference* ref, const WorkloadOptions& options) {
  uint64_t size = image.size();
  unsigned threads = std::max(1u, options.threads);
  // Thread boundaries sit on sector boundaries but deliberately inside clusters: two threads
  // then write different sectors of one cluster, which the image must keep apart.
  std::vector<uint64_t> bounds;
  for (unsigned i = 0; i <= threads; ++i) {
    uint64_t b = size / threads * i / kSector * kSector;
    if (i > 0 && i < threads) b += 3 * kSector;
    bounds.push_back(i == threads ? size : b);
  }
  std::atomic<bool> stop{false};
  std::mutex mutex;
  Status first_error;
  auto body = [&](unsigned i) {
    Worker worker(image, ref, options, i, bounds[i], bounds[i + 1]);
    if (Status s = worker.Run(stop); !s) {
      stop = true;
      std::lock_guard lock(mutex);
      if (first_error) first_error = s;
    }
  };
  if (threads == 1) {
    body(0);
  } else {
    std::vector<std::jthread> pool;
    for (unsigned i = 0; i < threads; ++i) pool.emplace_back(body, i);
  }
  if (!first_error) return first_error;
  if (options.flush_at_end) {
    if (auto r = image.Flush(); !r) return Fail("final flush: {}", r.error().message);
  }
  return {};
}

}  // namespace vireo::qcow2test
