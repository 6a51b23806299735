#include "virtio/descriptor_io.h"

#include <algorithm>

namespace vireo::virtio {

ChainReader::ChainReader(const GuestMemory& memory, const DescriptorChain& chain)
    : memory_(memory), buffers_(chain.readable()), remaining_(chain.readable_len()) {}

size_t ChainReader::Advance(size_t len, uint8_t* out) {
  size_t done = 0;
  while (done < len && index_ < buffers_.size()) {
    const ChainBuffer& buffer = buffers_[index_];
    size_t n = std::min<size_t>(len - done, buffer.len - offset_);
    if (out != nullptr && !memory_.Read(buffer.addr + offset_, {out + done, n})) {
      // Pop checked the buffer against RAM; RAM does not shrink. Stop rather than guess.
      remaining_ = 0;
      index_ = buffers_.size();
      break;
    }
    done += n;
    offset_ += n;
    remaining_ -= n;
    if (offset_ == buffer.len) {
      index_++;
      offset_ = 0;
    }
  }
  bytes_read_ += done;
  return done;
}

size_t ChainReader::Read(std::span<uint8_t> out) { return Advance(out.size(), out.data()); }

size_t ChainReader::Skip(size_t len) { return Advance(len, nullptr); }

ChainWriter::ChainWriter(const GuestMemory& memory, const DescriptorChain& chain)
    : memory_(memory), buffers_(chain.writable()), remaining_(chain.writable_len()) {}

size_t ChainWriter::Write(std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size() && index_ < buffers_.size()) {
    const ChainBuffer& buffer = buffers_[index_];
    size_t n = std::min<size_t>(data.size() - done, buffer.len - offset_);
    if (!memory_.Write(buffer.addr + offset_, data.subspan(done, n))) {
      remaining_ = 0;
      index_ = buffers_.size();
      break;
    }
    done += n;
    offset_ += n;
    remaining_ -= n;
    if (offset_ == buffer.len) {
      index_++;
      offset_ = 0;
    }
  }
  bytes_written_ += done;
  return done;
}

}  // namespace vireo::virtio
