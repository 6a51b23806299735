// The io_uring engine: one ring per backend, with the backend's eventfd registered so the
// kernel signals it for every completion. Steps are tagged with user_data = slot tag.
#include <errno.h>
#include <liburing.h>
#include <string.h>

#include <algorithm>
#include <cstdlib>

#include "base/log.h"
#include "block/io_engine.h"

namespace vireo::block {
namespace {

class UringEngine final : public IoEngine {
 public:
  explicit UringEngine(int fd) : fd_(fd) {}
  ~UringEngine() override;
  Status Init(unsigned depth, int event_fd);

  const char* name() const override { return "io_uring"; }
  void Queue(uint32_t tag, const IoStep& step) override;
  void Kick() override;
  size_t Reap(std::span<IoCompletion> out) override;

 private:
  int fd_;
  bool initialized_ = false;
  io_uring ring_{};
  unsigned queued_ = 0;     // Prepared, not yet submitted.
  unsigned in_flight_ = 0;  // Prepared, not yet reaped.
};

UringEngine::~UringEngine() {
  if (!initialized_) return;
  // The kernel may still be writing into guest buffers: wait for every step before the ring
  // goes. Results are dropped; nobody is left to hear them.
  Kick();
  while (in_flight_ > 0) {
    io_uring_cqe* cqe = nullptr;
    int rc = io_uring_wait_cqe(&ring_, &cqe);
    if (rc == -EINTR) continue;
    if (rc < 0) {
      Log(LogLevel::kError, "io_uring: waiting for {} requests at close: {}", in_flight_,
          strerror(-rc));
      break;
    }
    io_uring_cqe_seen(&ring_, cqe);
    --in_flight_;
  }
  io_uring_queue_exit(&ring_);
}

void UringEngine::Queue(uint32_t tag, const IoStep& step) {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
  if (sqe == nullptr) {
    // Cannot happen while in_flight_ <= depth <= ring size; submitting frees the SQ anyway.
    Kick();
    sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
      Log(LogLevel::kError, "io_uring: submission queue full with {} in flight", in_flight_);
      std::abort();
    }
  }
  switch (step.kind) {
    case IoStep::Kind::kReadv:
      io_uring_prep_readv(sqe, fd_, step.iov, step.iov_count, step.offset);
      break;
    case IoStep::Kind::kWritev:
      io_uring_prep_writev(sqe, fd_, step.iov, step.iov_count, step.offset);
      break;
    case IoStep::Kind::kFdatasync:
      io_uring_prep_fsync(sqe, fd_, IORING_FSYNC_DATASYNC);
      break;
    case IoStep::Kind::kFallocate:
      io_uring_prep_fallocate(sqe, fd_, step.fallocate_mode, static_cast<off_t>(step.offset),
                              static_cast<off_t>(step.length));
      break;
  }
  io_uring_sqe_set_data64(sqe, tag);
  ++queued_;
  ++in_flight_;
}

void UringEngine::Kick() {
  // A failed io_uring_enter leaves the entries in the ring, so retrying submits them.
  for (int attempt = 0; queued_ > 0 && attempt < 16; ++attempt) {
    int rc = io_uring_submit(&ring_);
    if (rc >= 0) {
      queued_ -= std::min<unsigned>(queued_, static_cast<unsigned>(rc));
      continue;
    }
    if (rc != -EINTR && rc != -EAGAIN && rc != -EBUSY) {
      Log(LogLevel::kError, "io_uring_submit: {}", strerror(-rc));
      std::abort();  // The ring is broken: a VMM invariant, and requests would hang.
    }
  }
}

size_t UringEngine::Reap(std::span<IoCompletion> out) {
  size_t n = 0;
  unsigned head;
  io_uring_cqe* cqe;
  io_uring_for_each_cqe(&ring_, head, cqe) {
    if (n == out.size()) break;
    out[n++] = IoCompletion{static_cast<uint32_t>(io_uring_cqe_get_data64(cqe)), cqe->res};
  }
  io_uring_cq_advance(&ring_, static_cast<unsigned>(n));
  in_flight_ -= static_cast<unsigned>(n);
  return n;
}

Status UringEngine::Init(unsigned depth, int event_fd) {
  int rc = io_uring_queue_init(depth, &ring_, 0);
  if (rc < 0) return Fail("io_uring_queue_init: {}", strerror(-rc));
  initialized_ = true;
  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  if (probe == nullptr) return Fail("io_uring: the kernel cannot list its opcodes (before 5.6)");
  bool ok = true;
  for (int op : {IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC, IORING_OP_FALLOCATE}) {
    ok = ok && io_uring_opcode_supported(probe, op);
  }
  io_uring_free_probe(probe);
  if (!ok) return Fail("io_uring: the kernel lacks readv, writev, fsync or fallocate");
  rc = io_uring_register_eventfd(&ring_, event_fd);
  if (rc < 0) return Fail("io_uring_register_eventfd: {}", strerror(-rc));
  return {};
}

}  // namespace

Result<std::unique_ptr<IoEngine>> CreateUringEngine(int fd, unsigned depth, int event_fd) {
  auto engine = std::make_unique<UringEngine>(fd);
  VIREO_TRY_STATUS(engine->Init(depth, event_fd));
  return std::unique_ptr<IoEngine>(std::move(engine));
}

}  // namespace vireo::block
