// The pure parts of `vireo img`'s command lines: `-o key=value,...` creation options, sizes as
// qemu-img takes them, and sizes printed as qemu-img prints them. No I/O here, so every rule
// is unit-tested (options_test.cc).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "block/open_image.h"
#include "block/qcow2/qcow2_image.h"

namespace vireo::img {

// What `-o` may set, for either format. Absent keys keep the defaults of CreateOptions.
struct CreateSettings {
  block::qcow2::CreateOptions qcow2;  // size stays 0: the size comes from the command line.
  bool size_given = false;            // -o size=...
  uint64_t size = 0;
};

// Parses "-o cluster_size=64k,compression_type=zstd,compat=1.1,lazy_refcounts=on" for a file
// of `format` (kRaw takes only size and preallocation=off). Values Vireo cannot produce
// (refcount_bits other than 16, extended_l2=on, preallocation) are refused by name, and so is
// a combination the format forbids (zstd or lazy refcounts with compat=0.10).
Result<CreateSettings> ParseCreateOptions(std::string_view text, block::ImageFormat format);

// "-o" text given several times is joined with commas, as qemu-img does.
std::string JoinOptionTexts(const std::vector<std::string>& texts);

// A size as qemu-img reads it: a number with an optional k/K, M, G, T, P or E suffix (powers
// of 1024), or "b"; a bare number is bytes. Fractions such as "1.5G" are accepted.
Result<uint64_t> ParseImgSize(std::string_view text);

// `resize`'s size: "+1G" and "-512M" are relative to current, anything else is absolute.
// Fails when the result would be negative or overflow.
Result<uint64_t> ParseResizeSize(std::string_view text, uint64_t current);

// qemu's size_to_str: "1.26 MiB", "388 KiB", "64 MiB", "0 B" (three significant digits,
// switching unit at 1000 of the smaller one).
std::string HumanSize(uint64_t bytes);

// The image format named by -f/-O/-F; "" is kAuto (probe).
Result<block::ImageFormat> ParseFormatOption(std::string_view name, std::string_view option);

}  // namespace vireo::img
