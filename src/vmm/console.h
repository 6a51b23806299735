// Console: the host side of the guest's serial line. Output goes to stdout, a file or
// nowhere; input comes from stdin (a raw terminal, or a pipe) and waits for room in the
// UART's receive FIFO rather than being dropped. The terminal is restored on destruction.
#pragma once

#include <termios.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <thread>

#include "base/result.h"
#include "base/unique_fd.h"
#include "vmm/vm_config.h"

namespace vireo {

class Console {
 public:
  static Result<std::unique_ptr<Console>> Create(SerialMode mode, const std::string& path);
  ~Console();

  // The UART's output callback. Called on vCPU threads; writes straight through.
  std::function<void(std::span<const uint8_t>)> OutputSink();
  // Where stdin goes: the UART, or virtio-console with --console. Both take what fits.
  struct InputSink {
    std::function<size_t(std::span<const uint8_t>)> enqueue;
    std::function<size_t()> space;
  };
  // Starts feeding stdin into `sink` (stdio mode only). The first call wins; the sink must
  // outlive StopInput().
  void StartInput(InputSink sink);
  void StopInput();

 private:
  Console() = default;
  void InputLoop();

  SerialMode mode_ = SerialMode::kNone;
  UniqueFd output_file_;
  int output_fd_ = -1;
  std::optional<termios> saved_termios_;
  UniqueFd stop_event_;
  InputSink sink_;
  std::thread input_thread_;
};

}  // namespace vireo
