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

class Serial8250;

class Console {
 public:
  static Result<std::unique_ptr<Console>> Create(SerialMode mode, const std::string& path);
  ~Console();

  // The UART's output callback. Called on vCPU threads; writes straight through.
  std::function<void(std::span<const uint8_t>)> OutputSink();
  // Starts feeding stdin into the UART (stdio mode only).
  void StartInput(Serial8250& uart);
  void StopInput();

 private:
  Console() = default;
  void InputLoop(Serial8250* uart);

  SerialMode mode_ = SerialMode::kNone;
  UniqueFd output_file_;
  int output_fd_ = -1;
  std::optional<termios> saved_termios_;
  UniqueFd stop_event_;
  std::thread input_thread_;
};

}  // namespace vireo
