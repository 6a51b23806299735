#include "vmm/console.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace vireo {
namespace {

void WriteAll(int fd, std::span<const uint8_t> data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        pollfd p{fd, POLLOUT, 0};
        ::poll(&p, 1, 100);
        continue;
      }
      return;  // stdout closed: the guest's output has nowhere to go, drop it
    }
    data = data.subspan(static_cast<size_t>(n));
  }
}

}  // namespace

Result<std::unique_ptr<Console>> Console::Create(SerialMode mode, const std::string& path) {
  std::unique_ptr<Console> console(new Console());
  console->mode_ = mode;
  console->stop_event_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  switch (mode) {
    case SerialMode::kStdio:
      console->output_fd_ = STDOUT_FILENO;
      if (::isatty(STDIN_FILENO)) {
        termios t{};
        if (::tcgetattr(STDIN_FILENO, &t) == 0) {
          console->saved_termios_ = t;
          // Raw input for the guest, but keep ISIG so Ctrl-C still stops the VM cleanly.
          cfmakeraw(&t);
          t.c_lflag |= ISIG;
          t.c_oflag |= OPOST | ONLCR;
          ::tcsetattr(STDIN_FILENO, TCSANOW, &t);
        }
      }
      break;
    case SerialMode::kFile:
      console->output_file_.reset(
          ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
      if (!console->output_file_) {
        return Fail("--serial file:{}: cannot open for writing: {}", path, std::strerror(errno));
      }
      console->output_fd_ = console->output_file_.get();
      break;
    case SerialMode::kNone:
      break;
  }
  return console;
}

Console::~Console() {
  StopInput();
  if (saved_termios_) ::tcsetattr(STDIN_FILENO, TCSANOW, &*saved_termios_);
}

std::function<void(std::span<const uint8_t>)> Console::OutputSink() {
  int fd = output_fd_;
  if (fd < 0) return [](std::span<const uint8_t>) {};
  return [fd](std::span<const uint8_t> data) { WriteAll(fd, data); };
}

void Console::StartInput(InputSink sink) {
  if (mode_ != SerialMode::kStdio || input_thread_.joinable()) return;
  sink_ = std::move(sink);
  input_thread_ = std::thread([this] { InputLoop(); });
}

void Console::StopInput() {
  if (!input_thread_.joinable()) return;
  uint64_t one = 1;
  (void)!::write(stop_event_.get(), &one, sizeof(one));
  input_thread_.join();
}

void Console::InputLoop() {
  uint8_t buffer[256];
  while (true) {
    pollfd fds[2] = {{STDIN_FILENO, POLLIN, 0}, {stop_event_.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    ssize_t n = ::read(STDIN_FILENO, buffer, sizeof(buffer));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n <= 0) return;  // EOF: the guest simply gets no more input
    std::span<const uint8_t> pending(buffer, static_cast<size_t>(n));
    while (!pending.empty()) {
      // Offer only what fits: EnqueueInput drops (and counts) any excess.
      size_t room = std::min(sink_.space(), pending.size());
      if (room > 0) pending = pending.subspan(sink_.enqueue(pending.first(room)));
      if (pending.empty()) break;
      // FIFO full: wait for the guest to drain it, but stay responsive to shutdown.
      pollfd stop{stop_event_.get(), POLLIN, 0};
      if (::poll(&stop, 1, 5) > 0) return;
    }
  }
}

}  // namespace vireo
