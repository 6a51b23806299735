// qcow2_driver: Vireo's qcow2 engine behind a command line, for the interop tests in this
// folder. The shell scripts run qemu-img on one side and this program on the other, so
// qemu-img judges what Vireo wrote and what Vireo read.
//
//   create IMG SIZE [--cluster-size N] [--version 2|3] [--backing F] [--backing-format raw|qcow2]
//                   [--lazy-refcounts] [--compression zlib|zstd]
//   read IMG OUT          whole disk into the raw file OUT (opened read-only)
//   map IMG               one line per extent: start length kind depth host_offset compressed
//   compare IMG RAW       both read through Vireo (qcow2 and raw); exit 1 at the first difference
//   script IMG REF FILE   applies FILE's operations to IMG and to the raw file REF
//   workload IMG [REF]    random operations (see workload.h); REF mirrors them
//   check IMG [--repair]  Vireo's Check(): exit 0 clean, 3 leaks only, 2 corrupt, 1 error
//   snapshot IMG list|create|apply|delete [NAME]
//   touch IMG [--rw] [--write-at OFF]   opens, optionally writes 512 bytes at OFF, then reads
//                                       and maps the whole disk; exit 1 at the first error
//   info IMG              header fields, one "key: value" per line
//
// Exit status 1 means an error the engine reported (its message on stderr); anything else
// unexpected (a crash, a sanitizer report) is what the tests look for as a failure.
#include <fcntl.h>
#include <unistd.h>
#include <CLI/CLI.hpp>
#include <cstdio>

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "block/qcow2/qcow2_image.h"
#include "block/raw_image.h"
#include "reference.h"
#include "workload.h"

namespace vireo::qcow2test {
namespace {

using block::qcow2::Qcow2Image;

constexpr uint64_t kChunk = 1 << 20;

int Error(const std::string& what) {
  std::fprintf(stderr, "qcow2_driver: %s\n", what.c_str());
  return 1;
}

Result<std::unique_ptr<Qcow2Image>> OpenQcow2(const std::string& path, bool read_only) {
  block::qcow2::OpenOptions options;
  options.read_only = read_only;
  return Qcow2Image::Open(path, options);
}

int Create(const std::string& path, uint64_t size, uint32_t cluster_size, int version,
           const std::string& backing, const std::string& backing_format, bool lazy,
           const std::string& compression) {
  block::qcow2::CreateOptions options;
  options.size = size;
  options.cluster_size = cluster_size;
  options.version = version;
  options.backing_file = backing;
  options.backing_format = backing_format;
  options.lazy_refcounts = lazy;
  options.compression = compression == "zstd" ? block::qcow2::CompressionType::kZstd
                                              : block::qcow2::CompressionType::kZlib;
  if (auto s = Qcow2Image::Create(path, options); !s) return Error(s.error().message);
  return 0;
}

int ReadAll(const std::string& path, const std::string& out_path) {
  auto image = OpenQcow2(path, true);
  if (!image) return Error(image.error().message);
  if (auto s = block::RawImage::Create(out_path, (*image)->size()); !s) {
    return Error(s.error().message);
  }
  auto out = block::RawImage::Open(out_path, false);
  if (!out) return Error(out.error().message);
  std::vector<uint8_t> buffer(kChunk), zeros(kChunk, 0);
  for (uint64_t off = 0; off < (*image)->size(); off += kChunk) {
    std::span<uint8_t> part(buffer.data(), std::min(kChunk, (*image)->size() - off));
    if (auto r = (*image)->Read(off, part); !r) return Error(r.error().message);
    // Holes stay holes, so reading a mostly empty disk does not fill the test's disk.
    if (std::memcmp(part.data(), zeros.data(), part.size()) == 0) continue;
    if (auto r = (*out)->Write(off, part); !r) return Error(r.error().message);
  }
  return 0;
}

const char* KindName(block::Extent::Kind kind) {
  switch (kind) {
    case block::Extent::Kind::kData:
      return "data";
    case block::Extent::Kind::kZero:
      return "zero";
    case block::Extent::Kind::kUnallocated:
      return "unallocated";
  }
  return "?";
}

int MapAll(const std::string& path) {
  auto image = OpenQcow2(path, true);
  if (!image) return Error(image.error().message);
  uint64_t size = (*image)->size();
  for (uint64_t off = 0; off < size;) {
    auto extent = (*image)->Map(off, size - off);
    if (!extent) return Error(extent.error().message);
    if (extent->length == 0 || extent->length > size - off) {
      return Error(fmt::format("Map({}, {}) returned length {}", off, size - off, extent->length));
    }
    std::printf("%lu %lu %s %u %ld %d\n", static_cast<unsigned long>(off),
                static_cast<unsigned long>(extent->length), KindName(extent->kind), extent->depth,
                static_cast<long>(extent->host_offset), extent->compressed ? 1 : 0);
    off += extent->length;
  }
  return 0;
}

int Compare(const std::string& path, const std::string& raw_path) {
  auto image = OpenQcow2(path, true);
  if (!image) return Error(image.error().message);
  auto raw = block::RawImage::Open(raw_path, true);
  if (!raw) return Error(raw.error().message);
  if ((*image)->size() != (*raw)->size()) {
    return Error(fmt::format("sizes differ: qcow2 {} raw {}", (*image)->size(), (*raw)->size()));
  }
  std::vector<uint8_t> a(kChunk), b(kChunk);
  for (uint64_t off = 0; off < (*image)->size(); off += kChunk) {
    uint64_t n = std::min(kChunk, (*image)->size() - off);
    if (auto r = (*image)->Read(off, std::span(a.data(), n)); !r) {
      return Error(r.error().message);
    }
    if (auto r = (*raw)->Read(off, std::span(b.data(), n)); !r) return Error(r.error().message);
    // memcmp first: a byte loop over a 1 GiB disk takes most of a minute in the -O0 ASan build.
    if (std::memcmp(a.data(), b.data(), n) == 0) continue;
    auto [x, y] = std::mismatch(a.begin(), a.begin() + static_cast<ptrdiff_t>(n), b.begin());
    if (x != a.begin() + static_cast<ptrdiff_t>(n)) {
      return Error(fmt::format("content differs at offset {}: qcow2 0x{:02x}, raw 0x{:02x}",
                               off + static_cast<uint64_t>(x - a.begin()), *x, *y));
    }
  }
  std::printf("identical: %lu bytes\n", static_cast<unsigned long>((*image)->size()));
  return 0;
}

int Script(const std::string& path, const std::string& ref_path, const std::string& script) {
  auto image = OpenQcow2(path, false);
  if (!image) return Error(image.error().message);
  auto ref = Reference::Open(ref_path);
  if (!ref) return Error(ref.error().message);
  if (auto s = RunScript(**image, *ref, script); !s) return Error(s.error().message);
  if (auto r = (*image)->Flush(); !r) return Error(r.error().message);
  return 0;
}

int Workload(const std::string& path, const std::string& ref_path, WorkloadOptions options) {
  auto image = OpenQcow2(path, false);
  if (!image) return Error(image.error().message);
  options.cluster_size = (*image)->cluster_size();
  std::optional<Reference> ref;
  if (!ref_path.empty()) {
    auto r = Reference::Open(ref_path);
    if (!r) return Error(r.error().message);
    if (r->size() != (*image)->size()) return Error("the reference and the image differ in size");
    ref = std::move(*r);
  }
  std::printf("workload: seed %lu, %u thread(s), %lu operations each%s\n",
              static_cast<unsigned long>(options.seed), options.threads,
              static_cast<unsigned long>(options.ops),
              options.alloc_heavy ? ", allocation-heavy" : "");
  std::fflush(stdout);
  if (auto s = RunWorkload(**image, ref ? &*ref : nullptr, options); !s) {
    return Error(fmt::format("seed {}: {}", options.seed, s.error().message));
  }
  return 0;
}

int Check(const std::string& path, bool repair) {
  auto image = OpenQcow2(path, !repair);
  if (!image) return Error(image.error().message);
  auto result = (*image)->Check(repair);
  if (!result) return Error(result.error().message);
  for (const auto& m : result->messages) std::printf("%s\n", m.c_str());
  std::printf("corruptions: %lu\nleaks: %lu\nleaks fixed: %lu\n",
              static_cast<unsigned long>(result->corruptions),
              static_cast<unsigned long>(result->leaks),
              static_cast<unsigned long>(result->leaks_fixed));
  if (result->corruptions > 0) return 2;
  if (result->leaks > result->leaks_fixed) return 3;
  return 0;
}

int Snapshot(const std::string& path, const std::string& action, const std::string& name) {
  auto image = OpenQcow2(path, action == "list");
  if (!image) return Error(image.error().message);
  Status s;
  if (action == "list") {
    auto list = (*image)->ListSnapshots();
    if (!list) return Error(list.error().message);
    for (const auto& snap : *list) {
      std::printf("%s\t%s\t%lu\n", snap.id.c_str(), snap.name.c_str(),
                  static_cast<unsigned long>(snap.disk_size));
    }
  } else if (action == "create") {
    s = (*image)->CreateSnapshot(name);
  } else if (action == "apply") {
    s = (*image)->ApplySnapshot(name);
  } else if (action == "delete") {
    s = (*image)->DeleteSnapshot(name);
  } else {
    return Error("unknown snapshot action " + action);
  }
  if (!s) return Error(s.error().message);
  if (auto r = (*image)->Flush(); !r) return Error(r.error().message);
  return 0;
}

int Touch(const std::string& path, bool rw, std::optional<uint64_t> write_at) {
  auto image = OpenQcow2(path, !rw);
  if (!image) return Error("open: " + image.error().message);
  // The write goes first: a write into the damaged range must be refused, not be the thing
  // that happens after a read already failed.
  if (write_at) {
    std::vector<uint8_t> data(512, 0x5a);
    if (auto r = (*image)->Write(*write_at, data); !r) {
      return Error("write: " + r.error().message);
    }
    if (auto r = (*image)->Flush(); !r) return Error("flush: " + r.error().message);
  }
  uint64_t size = (*image)->size();
  std::vector<uint8_t> buffer(kChunk);
  for (uint64_t off = 0; off < size; off += kChunk) {
    std::span<uint8_t> part(buffer.data(), std::min(kChunk, size - off));
    if (auto r = (*image)->Read(off, part); !r) return Error("read: " + r.error().message);
  }
  for (uint64_t off = 0; off < size;) {
    auto extent = (*image)->Map(off, size - off);
    if (!extent) return Error("map: " + extent.error().message);
    if (extent->length == 0) return Error("map: zero-length extent");
    off += extent->length;
  }
  std::printf("no error\n");
  return 0;
}

int Info(const std::string& path, bool rw) {
  auto image = OpenQcow2(path, !rw);
  if (!image) return Error(image.error().message);
  const auto& h = (*image)->header();
  std::printf(
      "version: %u\ncluster_size: %u\nsize: %lu\ndirty: %d\nlazy_refcounts: %d\n"
      "backing_file: %s\nbacking_format: %s\nsnapshots: %u\n",
      h.version, h.cluster_size(), static_cast<unsigned long>(h.size), h.dirty() ? 1 : 0,
      h.lazy_refcounts() ? 1 : 0, h.backing_file.c_str(), h.backing_format.c_str(), h.nb_snapshots);
  return 0;
}

int Main(int argc, char** argv) {
  CLI::App app{"qcow2_driver: Vireo's qcow2 engine for the interop tests"};
  app.require_subcommand(1);
  std::string img, other, third, action, name;
  uint64_t size = 0;

  auto* create = app.add_subcommand("create", "create an empty qcow2 image");
  uint32_t cluster_size = 65536;
  int version = 3;
  std::string backing, backing_format, compression = "zlib";
  bool lazy = false;
  create->add_option("IMG", img)->required();
  create->add_option("SIZE", size)->required();
  create->add_option("--cluster-size", cluster_size);
  create->add_option("--version", version);
  create->add_option("--backing", backing);
  create->add_option("--backing-format", backing_format);
  create->add_option("--compression", compression);
  create->add_flag("--lazy-refcounts", lazy);

  auto* read = app.add_subcommand("read", "read the whole disk into a raw file");
  read->add_option("IMG", img)->required();
  read->add_option("OUT", other)->required();

  auto* map = app.add_subcommand("map", "print the extents");
  map->add_option("IMG", img)->required();

  auto* compare = app.add_subcommand("compare", "compare with a raw file through Vireo");
  compare->add_option("IMG", img)->required();
  compare->add_option("RAW", other)->required();

  auto* script = app.add_subcommand("script", "apply a script of operations");
  script->add_option("IMG", img)->required();
  script->add_option("REF", other)->required();
  script->add_option("FILE", third)->required();

  auto* workload = app.add_subcommand("workload", "random operations");
  WorkloadOptions wopts;
  bool no_flush = false;
  workload->add_option("IMG", img)->required();
  workload->add_option("REF", other);
  workload->add_option("--ops", wopts.ops);
  workload->add_option("--seed", wopts.seed);
  workload->add_option("--threads", wopts.threads);
  workload->add_flag("--forever", wopts.forever);
  workload->add_flag("--alloc-heavy", wopts.alloc_heavy);
  workload->add_flag("--no-final-flush", no_flush);
  workload->add_flag("--verbose", wopts.verbose);

  auto* check = app.add_subcommand("check", "Vireo's consistency check");
  bool repair = false;
  check->add_option("IMG", img)->required();
  check->add_flag("--repair", repair);

  auto* snapshot = app.add_subcommand("snapshot", "internal snapshots");
  snapshot->add_option("IMG", img)->required();
  snapshot->add_option("ACTION", action)->required();
  snapshot->add_option("NAME", name);

  auto* touch = app.add_subcommand("touch", "open, read and map everything");
  bool rw = false;
  std::optional<uint64_t> write_at;
  touch->add_option("IMG", img)->required();
  touch->add_flag("--rw", rw);
  touch->add_option("--write-at", write_at);

  auto* info = app.add_subcommand("info", "header fields");
  info->add_option("IMG", img)->required();
  info->add_flag("--rw", rw);

  CLI11_PARSE(app, argc, argv);
  if (*create) {
    return Create(img, size, cluster_size, version, backing, backing_format, lazy, compression);
  }
  if (*read) return ReadAll(img, other);
  if (*map) return MapAll(img);
  if (*compare) return Compare(img, other);
  if (*script) return Script(img, other, third);
  if (*workload) {
    wopts.flush_at_end = !no_flush;
    return Workload(img, other, wopts);
  }
  if (*check) return Check(img, repair);
  if (*snapshot) return Snapshot(img, action, name);
  if (*touch) return Touch(img, rw, write_at);
  if (*info) return Info(img, rw);
  return 2;
}

}  // namespace
}  // namespace vireo::qcow2test

int main(int argc, char** argv) { return vireo::qcow2test::Main(argc, argv); }
