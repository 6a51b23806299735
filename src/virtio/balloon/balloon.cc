#include "virtio/balloon/balloon.h"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>

#include "base/bytes.h"
#include "base/log.h"
#include "virtio/balloon/discard.h"
#include "virtio/descriptor_io.h"

namespace vireo::virtio::balloon {
namespace {

uint64_t Features(const BalloonOptions& options) {
  uint64_t features = 0;
  if (options.stats) features |= kBalloonFStatsVq;
  if (options.deflate_on_oom) features |= kBalloonFDeflateOnOom;
  if (options.page_reporting) features |= kBalloonFPageReporting;
  return features;
}

}  // namespace

Result<std::unique_ptr<Balloon>> Balloon::Create(BalloonOptions options, EventLoop& loop) {
  std::array<EventFd, kMaxQueues> notify;
  for (EventFd& fd : notify) {
    auto created = EventFd::Create();
    if (!created) return Wrap("virtio-balloon: creating a notify eventfd", created.error());
    fd = std::move(*created);
  }
  auto stats_request = EventFd::Create();
  if (!stats_request) return Wrap("virtio-balloon: creating an eventfd", stats_request.error());
  return std::unique_ptr<Balloon>(
      new Balloon(options, loop, std::move(notify), std::move(*stats_request)));
}

Balloon::Balloon(BalloonOptions options, EventLoop& loop, std::array<EventFd, kMaxQueues> notify,
                 EventFd stats_request)
    : features_(Features(options)),
      loop_(loop),
      notify_(std::move(notify)),
      stats_request_(std::move(stats_request)),
      chain_(kQueueSize + kMaxIndirectEntries) {
  stats_.reserve(kMaxStats);
}

Balloon::~Balloon() { Reset(); }

// ---- Configuration space (5.5.4). ----

bool Balloon::ReadConfig(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  return ReadConfigBytes(AsBytes(config_), offset, data);
}

bool Balloon::WriteConfig(uint64_t offset, std::span<const uint8_t> data) {
  // Only `actual` is the driver's to write (5.5.4); num_pages belongs to the device.
  constexpr uint64_t kActual = offsetof(BalloonConfig, actual);
  if (offset < kActual || !RangeFits(offset - kActual, data.size(), sizeof(uint32_t))) {
    return false;
  }
  std::lock_guard lock(mu_);
  if (!data.empty()) {
    std::memcpy(reinterpret_cast<uint8_t*>(&config_.actual) + (offset - kActual), data.data(),
                data.size());
  }
  return true;
}

Status Balloon::SetTarget(uint64_t pages) {
  if (pages > std::numeric_limits<uint32_t>::max()) {
    return Fail("balloon target of {} pages does not fit in num_pages (at most {} 4 KiB pages)",
                pages, std::numeric_limits<uint32_t>::max());
  }
  std::lock_guard lock(mu_);
  const bool changed = config_.num_pages != pages;
  config_.num_pages = static_cast<uint32_t>(pages);
  if (changed && active_) interrupt_->SignalConfigChange();  // 5.5.6: the driver re-reads
  return {};
}

uint32_t Balloon::target() const {
  std::lock_guard lock(mu_);
  return config_.num_pages;
}

uint32_t Balloon::actual() const {
  std::lock_guard lock(mu_);
  return config_.actual;
}

// ---- Life cycle. ----

Status Balloon::Activate(ActivateContext context) {
  if (context.queues.size() != kMaxQueues) {
    return Fail("virtio-balloon: expected {} queues, got {}", kMaxQueues, context.queues.size());
  }
  {
    std::lock_guard lock(mu_);
    if (active_ || registered_) return Fail("virtio-balloon: already active");
    const uint64_t negotiated = context.features & features_;
    // 5.5.2: statsq and reporting_vq exist only when negotiated; absent ones take no index.
    roles_ = {Role::kInflate, Role::kDeflate, Role::kNone, Role::kNone};
    uint16_t next = 2;
    if (negotiated & kBalloonFStatsVq) {
      stats_queue_ = next;
      roles_[next++] = Role::kStats;
    }
    if (negotiated & kBalloonFPageReporting) roles_[next++] = Role::kReporting;
    memory_ = &context.memory;
    queues_ = context.queues;
    interrupt_ = &context.interrupt;
    needs_reset_ = false;
    // Reset emptied stats_head_; only a restore (RestoreState) can have set it since.
    if (!(negotiated & kBalloonFStatsVq)) stats_head_.reset();
    active_ = true;
  }
  // Outside mu_, like Reset: the loop may already run our handlers once an fd is added.
  Status added;
  size_t count = 0;
  for (; count < kMaxQueues && added; ++count) {
    const auto index = static_cast<uint16_t>(count);
    added = loop_.Add(notify_[count].fd(), EPOLLIN, [this, index](uint32_t) { OnNotify(index); });
  }
  if (added) {
    added = loop_.Add(stats_request_.fd(), EPOLLIN, [this](uint32_t) { OnStatsRequest(); });
  } else {
    count--;  // the failed one was not added
  }
  std::lock_guard lock(mu_);
  if (!added) {
    for (size_t i = 0; i < count; ++i) (void)loop_.Remove(notify_[i].fd());
    active_ = false;
    memory_ = nullptr;
    queues_ = {};
    interrupt_ = nullptr;
    return Wrap("virtio-balloon: watching its fds", added.error());
  }
  registered_ = true;
  // Buffers made available before DRIVER_OK (Linux posts the stats buffer then) run now.
  for (const EventFd& fd : notify_) fd.Signal();
  return {};
}

void Balloon::Unregister() {
  auto remove = [this](int fd) {
    if (auto removed = loop_.Remove(fd); !removed) {
      Log(LogLevel::kError, "virtio-balloon: {}", removed.error().message);
    }
  };
  for (const EventFd& fd : notify_) remove(fd.fd());
  remove(stats_request_.fd());
}

void Balloon::Reset() {
  bool registered;
  {
    std::lock_guard lock(mu_);
    active_ = false;  // a handler that still runs does nothing more
    registered = std::exchange(registered_, false);
  }
  // Without mu_: Remove waits for a running handler, which takes mu_.
  if (registered) Unregister();
  std::lock_guard lock(mu_);
  memory_ = nullptr;
  queues_ = {};
  interrupt_ = nullptr;
  roles_ = {};
  needs_reset_ = false;
  stats_head_.reset();  // the driver is resetting its rings (2.4)
  stats_.clear();
  config_.actual = 0;  // num_pages stays: it is the host's wish
  for (const EventFd& fd : notify_) fd.Drain();
  stats_request_.Drain();
}

bool Balloon::needs_reset() const {
  std::lock_guard lock(mu_);
  return needs_reset_;
}

BalloonCounters Balloon::counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

std::vector<std::pair<uint16_t, uint64_t>> Balloon::LatestStats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

int Balloon::notify_fd(uint16_t index) const {
  return index < kMaxQueues ? notify_[index].fd() : -1;
}

void Balloon::QueueNotify(uint16_t index) {
  if (index >= kMaxQueues) {
    std::lock_guard lock(mu_);
    counters_.dropped_notifications++;
    return;
  }
  notify_[index].Signal();  // any thread; an inactive device ignores it
}

void Balloon::RequestStats() {
  std::lock_guard lock(mu_);
  if (!active_) {
    counters_.stats_requests_dropped++;
    return;
  }
  stats_request_.Signal();
}

// ---- Loop thread. ----

void Balloon::OnNotify(uint16_t index) {
  notify_[index].Drain();
  std::lock_guard lock(mu_);
  if (!active_) return;
  ProcessQueue(index);
}

void Balloon::OnStatsRequest() {
  stats_request_.Drain();
  std::lock_guard lock(mu_);
  if (!active_ || needs_reset_ || !stats_head_) {
    counters_.stats_requests_dropped++;
    return;
  }
  // 5.5.6.3: returning the buffer asks the driver to refill and re-post it.
  Queue& queue = queues_[stats_queue_];
  if (queue.AddUsed(*memory_, *stats_head_, 0)) {
    counters_.stats_requests++;
    if (queue.NeedsNotification(*memory_)) interrupt_->SignalUsed(stats_queue_);
  }
  stats_head_.reset();
}

void Balloon::MarkBroken() {
  if (needs_reset_) return;
  needs_reset_ = true;
  interrupt_->SignalConfigChange();  // 2.1.2
}

void Balloon::ProcessQueue(uint16_t index) {
  if (needs_reset_ || index >= queues_.size()) return;
  Queue& queue = queues_[index];
  const Role role = roles_[index];
  if (!queue.ready()) return;
  if (role == Role::kNone) {
    counters_.dropped_notifications++;
    return;
  }
  bool used = false;
  // Bounded: past this many chains, come back through the eventfd after other fds ran.
  const uint32_t max_rounds = 4u * queue.size();
  for (uint32_t round = 0;; ++round) {
    if (round == max_rounds) {
      notify_[index].Signal();
      break;
    }
    PopResult result = queue.Pop(*memory_, chain_);
    if (result == PopResult::kEmpty) break;
    if (result == PopResult::kBroken) {
      MarkBroken();
      break;
    }
    std::optional<uint32_t> len = 0;
    if (result == PopResult::kBadChain) {
      counters_.bad_chains++;
    } else {
      len = HandleChain(role, index, used);
    }
    if (len) used |= queue.AddUsed(*memory_, chain_.head(), *len);
  }
  if (used && queue.NeedsNotification(*memory_)) interrupt_->SignalUsed(index);
}

std::optional<uint32_t> Balloon::HandleChain(Role role, uint16_t index, bool& used) {
  switch (role) {
    case Role::kInflate:
      HandlePfns(/*inflate=*/true);
      return 0;
    case Role::kDeflate:
      HandlePfns(/*inflate=*/false);
      return 0;
    case Role::kReporting:
      HandleReport();
      return 0;
    case Role::kStats:
      used |= HandleStats(index);
      return std::nullopt;  // kept until RequestStats()
    case Role::kNone:
      break;
  }
  return 0;
}

// 5.5.6.1, 5.5.6.2: the chain's readable bytes are an array of le32 PFNs.
void Balloon::HandlePfns(bool inflate) {
  (inflate ? counters_.inflate_chains : counters_.deflate_chains)++;
  ChainReader reader(*memory_, chain_);
  const size_t available = reader.remaining() / sizeof(uint32_t);
  const size_t count = std::min<size_t>(available, kMaxPfnsPerChain);
  if (available > kMaxPfnsPerChain || reader.remaining() % sizeof(uint32_t) != 0) {
    counters_.truncated_chains++;
  }
  PageDiscarder discarder(*memory_);
  std::array<uint32_t, 256> batch;
  for (size_t done = 0; done < count;) {  // bounded by kMaxPfnsPerChain
    const size_t n = std::min(count - done, batch.size());
    std::span<uint8_t> bytes(reinterpret_cast<uint8_t*>(batch.data()), n * sizeof(uint32_t));
    if (reader.Read(bytes) != bytes.size()) break;  // cannot happen: `count` fits
    for (size_t i = 0; i < n; ++i) {
      const uint32_t pfn = LoadLe<uint32_t>(bytes, i * sizeof(uint32_t));
      if (inflate) {
        discarder.Add(pfn);
      } else if (memory_->Contains(static_cast<GuestAddress>(pfn) << kPageShift, kPageSize)) {
        counters_.pages_deflated++;  // nothing to do: the page faults back in when touched
      } else {
        counters_.bad_pfns++;
      }
    }
    done += n;
  }
  if (!inflate) return;
  discarder.Flush();
  const DiscardStats& stats = discarder.stats();
  counters_.pages_inflated += stats.pages;
  counters_.bad_pfns += stats.bad_pfns;
  counters_.discard_calls += stats.calls;
  counters_.bytes_discarded += stats.bytes;
  counters_.discard_failures += stats.failures;
}

// 5.5.6.7: each buffer of the chain is a range of free guest memory the host may reclaim.
// Pop has checked that every buffer lies inside one RAM region; there are at most
// kQueueSize + kMaxIndirectEntries of them.
void Balloon::HandleReport() {
  counters_.reports++;
  for (const ChainBuffer& buffer : chain_.buffers()) {
    counters_.discard_calls++;
    switch (DiscardGuestRange(*memory_, buffer.addr, buffer.len)) {
      case DiscardResult::kDone:
        counters_.bytes_discarded += buffer.len;
        break;
      case DiscardResult::kOutsideRam:
      case DiscardResult::kUnaligned:
        counters_.bad_reports++;
        break;
      case DiscardResult::kFailed:
        counters_.discard_failures++;
        break;
    }
  }
}

// 5.5.6.3: the readable bytes are struct virtio_balloon_stat { le16 tag; le64 val; } (packed).
// Returns whether an older buffer was put on the used ring.
bool Balloon::HandleStats(uint16_t index) {
  bool used = false;
  if (stats_head_) {
    // A driver keeps one buffer outstanding; return the older one rather than leak it.
    counters_.stats_buffers_replaced++;
    used = queues_[index].AddUsed(*memory_, *stats_head_, 0);
  }
  stats_head_ = chain_.head();
  stats_.clear();
  ChainReader reader(*memory_, chain_);
  std::array<uint8_t, kStatSize> entry;
  for (uint32_t i = 0; i < kMaxStats && reader.Read(entry) == entry.size(); ++i) {
    const auto tag = LoadLe<uint16_t>(entry, 0);
    const auto value = LoadLe<uint64_t>(entry, 2);
    auto same = std::find_if(stats_.begin(), stats_.end(),
                             [tag](const auto& stat) { return stat.first == tag; });
    if (same != stats_.end()) {
      same->second = value;  // a repeated tag: the last one wins
    } else {
      stats_.emplace_back(tag, value);  // within the capacity reserved at construction
    }
  }
  counters_.stats_updates++;
  return used;
}

}  // namespace vireo::virtio::balloon
