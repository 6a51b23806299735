// The qcow2 header and its extensions: parsed from the image's first cluster, validated,
// and written back. Validation refuses what Vireo cannot handle safely, naming the feature.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"

namespace vireo::block::qcow2 {

enum class CompressionType : uint8_t { kZlib = 0, kZstd = 1 };

struct FeatureName {
  uint8_t type = 0;  // 0 incompatible, 1 compatible, 2 autoclear
  uint8_t bit = 0;
  std::string name;
};

struct HeaderExtension {
  uint32_t type = 0;
  std::vector<uint8_t> data;
};

struct Header {
  uint32_t version = 3;
  uint64_t backing_file_offset = 0;
  uint32_t backing_file_size = 0;
  uint32_t cluster_bits = 16;
  uint64_t size = 0;
  uint32_t crypt_method = 0;
  uint32_t l1_size = 0;
  uint64_t l1_table_offset = 0;
  uint64_t refcount_table_offset = 0;
  uint32_t refcount_table_clusters = 0;
  uint32_t nb_snapshots = 0;
  uint64_t snapshots_offset = 0;
  // Version 3 fields (fixed values for version 2).
  uint64_t incompatible_features = 0;
  uint64_t compatible_features = 0;
  uint64_t autoclear_features = 0;
  uint32_t refcount_order = 4;
  uint32_t header_length = 0;
  CompressionType compression_type = CompressionType::kZlib;

  std::string backing_file;
  std::string backing_format;  // From the backing format extension; may be empty.
  std::vector<FeatureName> feature_names;
  std::vector<HeaderExtension> other_extensions;  // Kept as they are when rewriting.

  uint32_t cluster_size() const { return 1u << cluster_bits; }
  uint32_t refcount_bits() const { return 1u << refcount_order; }
  // Entries of 8 bytes per L2 table (one cluster).
  uint64_t l2_entries() const { return cluster_size() / 8; }
  bool dirty() const { return (incompatible_features & 1) != 0; }
  bool lazy_refcounts() const { return (compatible_features & 1) != 0; }
  // The L1 entries needed for a disk of `bytes`.
  uint64_t L1EntriesFor(uint64_t bytes) const;
};

// Parses and validates the header from the image's first bytes (at least the first cluster,
// or the whole file when shorter). file_size bounds every offset. Refuses encryption,
// external data files, extended L2 entries and unknown incompatible features, each by name.
Result<Header> ParseHeader(std::span<const uint8_t> first_bytes, uint64_t file_size);

// The header cluster: fixed fields, extensions (backing format, feature names, the rest) and
// the backing file name. Fails when they do not fit in one cluster.
Result<std::vector<uint8_t>> SerializeHeader(const Header& header);

// Names Vireo gives the feature bits it knows, for the feature name table and messages.
std::vector<FeatureName> KnownFeatureNames();

}  // namespace vireo::block::qcow2
