// The destination side of a live migration: `vireo run --incoming tcp:HOST:PORT` accepts one
// connection, fills fresh guest memory from the page batches, and hands the VM state on as a
// loaded snapshot, so the VM is rebuilt by the same code as `vireo run --restore`. With block
// migration the disks' contents are written into the images the destination's --disk options
// name, flushed before the acknowledgement. Nothing is kept on failure: the memory lives in this
// process only (a destination image may hold part of the disk; nothing runs on it). A post-copy
// migration returns before the last pages: they come in while the VM runs (PostcopyReceiver).
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/migration/postcopy_receiver.h"
#include "vmm/snapshot/snapshot_files.h"
#include "vmm/vm_config.h"

namespace vireo::migration {

class IncomingMigration {
 public:
  static constexpr int kIoTimeoutMs = 30000;

  IncomingMigration(UniqueFd connection, snapshot::LoadedSnapshot snapshot, std::string summary,
                    std::unique_ptr<PostcopyReceiver> postcopy = nullptr)
      : connection_(std::move(connection)),
        snapshot_(std::move(snapshot)),
        summary_(std::move(summary)),
        postcopy_(std::move(postcopy)) {}
  IncomingMigration(IncomingMigration&&) = default;
  // The post-copy threads use the connection: they stop first.
  ~IncomingMigration() { postcopy_.reset(); }

  snapshot::LoadedSnapshot& snapshot() { return snapshot_; }
  const std::string& summary() const { return summary_; }
  bool postcopy() const { return postcopy_ != nullptr; }
  // When the stream had been received (END, or POSTCOPY, and the checks after it): the
  // destination's part of the downtime starts about here.
  std::chrono::steady_clock::time_point stream_end() const { return stream_end_; }
  // The VM is rebuilt: the source may stop. Fails if the source cannot be told (it then
  // resumes the guest itself, so this side must not run it).
  Status Acknowledge();
  // Tells the source why this side gives up (it resumes the guest).
  void Refuse(const std::string& message);

 private:
  UniqueFd connection_;
  snapshot::LoadedSnapshot snapshot_;
  std::string summary_;
  std::unique_ptr<PostcopyReceiver> postcopy_;  // a post-copy migration's page fetching
  std::chrono::steady_clock::time_point stream_end_ = std::chrono::steady_clock::now();
};

// Listens on `uri` (tcp:HOST:PORT), says so on stderr, accepts one source and receives the
// whole stream. `disks` (the destination's --disk options: path and format) are where a block
// migration's disks go, in the source's order; empty refuses block migration, and non-empty
// refuses a migration without it. On any error the source is told why, and the error names the
// problem.
//
// `prepare`, when given, is called with the guest memory as soon as HELLO has laid it out and
// returns the VM to run it in (the KVM VM with the memory registered), so that this work is
// done while pages arrive instead of inside the downtime; it ends up in the snapshot's `vm`.
// A failure there is not fatal: the VM is then created after the stream, as without it.
using PrepareVm = std::function<Result<std::unique_ptr<accel::Vm>>(const GuestMemory&)>;
Result<IncomingMigration> ReceiveMigration(const std::string& uri,
                                           std::span<const DiskConfig> disks = {},
                                           const PrepareVm& prepare = nullptr);

}  // namespace vireo::migration
