#include "mgmt/vm_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/unique_fd.h"

namespace vireo::mgmt {
namespace {

// Async-signal-safe helpers for the forked children: no allocation, no locks.
void WriteAll(int fd, const char* data, size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data += n;
    size -= static_cast<size_t>(n);
  }
}

size_t FormatInt(char* out, long value) {
  char digits[24];
  size_t n = 0;
  bool negative = value < 0;
  unsigned long v =
      negative ? static_cast<unsigned long>(-value) : static_cast<unsigned long>(value);
  do {
    digits[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v);
  size_t len = 0;
  if (negative) out[len++] = '-';
  while (n) out[len++] = digits[--n];
  return len;
}

[[noreturn]] void ExecVm(const std::vector<char*>& argv, int stdin_fd, int stdout_fd, int stderr_fd,
                         const std::vector<int>& cgroup_fds) {
  // Join the cgroups first, so every thread of the VM is accounted and limited.
  for (int fd : cgroup_fds) WriteAll(fd, "0", 1);
  ::dup2(stdin_fd, STDIN_FILENO);
  ::dup2(stdout_fd, STDOUT_FILENO);
  ::dup2(stderr_fd, STDERR_FILENO);
  ::syscall(SYS_close_range, 3u, ~0u, 0u);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ::execv(argv[0], argv.data());
  static constexpr char kMsg[] = "vireo daemon: cannot exec the vireo binary\n";
  WriteAll(STDERR_FILENO, kMsg, sizeof(kMsg) - 1);
  ::_exit(127);
}

[[noreturn]] void RunShim(const std::vector<char*>& argv, int stdin_fd, int stdout_fd,
                          int stderr_fd, const std::vector<int>& cgroup_fds, int report_fd,
                          const char* exit_path, const char* exit_tmp) {
  ::setsid();  // away from the daemon's terminal and its process group's signals
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(sig, SIG_IGN);
  pid_t vm = ::fork();
  if (vm == 0) {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE}) ::signal(sig, SIG_DFL);
    ExecVm(argv, stdin_fd, stdout_fd, stderr_fd, cgroup_fds);
  }
  WriteAll(report_fd, reinterpret_cast<const char*>(&vm), sizeof(vm));
  ::syscall(SYS_close_range, 0u, ~0u, 0u);
  if (vm < 0) ::_exit(1);
  int status = 0;
  while (::waitpid(vm, &status, 0) < 0 && errno == EINTR) {
  }
  char line[48];
  size_t len = 0;
  if (WIFSIGNALED(status)) {
    std::memcpy(line, "signal ", 7);
    len = 7 + FormatInt(line + 7, WTERMSIG(status));
  } else {
    std::memcpy(line, "exit ", 5);
    len = 5 + FormatInt(line + 5, WEXITSTATUS(status));
  }
  line[len++] = '\n';
  int fd = ::open(exit_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd >= 0) {
    WriteAll(fd, line, len);
    ::fsync(fd);
    ::close(fd);
    ::rename(exit_tmp, exit_path);  // whole file or none: the daemon may be reading
  }
  ::_exit(0);
}

}  // namespace

uint64_t ProcessStartTime(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // comm (field 2) may hold spaces and parentheses: fields resume after the last ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(text.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(fields >> field)) return 0;
    if (i == 3 && field == "Z") return 0;  // a zombie has ended
  }
  return std::strtoull(field.c_str(), nullptr, 10);
}

bool IsSameProcess(pid_t pid, uint64_t start_time) {
  return start_time != 0 && ProcessStartTime(pid) == start_time;
}

std::string ExitStatus::Describe() const {
  return signaled ? fmt::format("killed by signal {}", code) : fmt::format("exit status {}", code);
}

std::optional<ExitStatus> ReadExitFile(const std::string& path) {
  std::ifstream in(path);
  std::string kind;
  int code = 0;
  if (!(in >> kind >> code)) return std::nullopt;
  if (kind != "exit" && kind != "signal") return std::nullopt;
  return ExitStatus{kind == "signal", code};
}

Result<ProcessRecord> SpawnVm(const LaunchSpec& spec) {
  UniqueFd log(::open(spec.log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!log) return Fail("log file '{}': {}", spec.log_path, std::strerror(errno));
  UniqueFd console(
      ::open(spec.console_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!console) return Fail("console file '{}': {}", spec.console_path, std::strerror(errno));
  ::unlink(spec.console_input.c_str());
  if (::mkfifo(spec.console_input.c_str(), 0600) != 0) {
    return Fail("console input FIFO '{}': {}", spec.console_input, std::strerror(errno));
  }
  // Read-write, so the VM never sees end-of-file when no console client is writing.
  UniqueFd input(::open(spec.console_input.c_str(), O_RDWR | O_CLOEXEC));
  if (!input) return Fail("console input FIFO '{}': {}", spec.console_input, std::strerror(errno));
  std::vector<UniqueFd> cgroup_files;
  std::vector<int> cgroup_fds;
  for (const std::string& path : spec.cgroup_procs) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) return Fail("cgroup '{}': {}", path, std::strerror(errno));
    cgroup_fds.push_back(fd.get());
    cgroup_files.push_back(std::move(fd));
  }
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return Fail("pipe: {}", std::strerror(errno));
  UniqueFd report_read(report[0]), report_write(report[1]);

  // Everything the children touch is prepared here: after fork() in a threaded daemon they
  // may not allocate.
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  const std::string exit_tmp = spec.exit_path + ".tmp";
  ::unlink(spec.exit_path.c_str());

  pid_t shim = ::fork();
  if (shim < 0) return Fail("fork: {}", std::strerror(errno));
  if (shim == 0) {
    RunShim(argv, input.get(), console.get(), log.get(), cgroup_fds, report_write.get(),
            spec.exit_path.c_str(), exit_tmp.c_str());
  }
  report_write.reset();
  pid_t vm = -1;
  ssize_t n;
  do {
    n = ::read(report_read.get(), &vm, sizeof(vm));
  } while (n < 0 && errno == EINTR);
  if (n != sizeof(vm) || vm <= 0) {
    ::waitpid(shim, nullptr, 0);
    return Fail("could not start the VM process (fork failed in the monitor)");
  }
  ProcessRecord record{shim, ProcessStartTime(shim), vm, ProcessStartTime(vm)};
  return record;
}

bool WaitForExit(const ProcessRecord& record, int stop_fd) {
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, record.vm_pid, 0)));
  if (pidfd && IsSameProcess(record.vm_pid, record.vm_start)) {
    pollfd fds[2] = {{pidfd.get(), POLLIN, 0}, {stop_fd, POLLIN, 0}};
    while (true) {
      int n = ::poll(fds, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      if (fds[1].revents) return false;
      if (fds[0].revents) break;
    }
  } else if (!pidfd && IsSameProcess(record.vm_pid, record.vm_start)) {
    // No pidfd (old kernel): poll /proc.
    while (IsSameProcess(record.vm_pid, record.vm_start)) {
      pollfd stop = {stop_fd, POLLIN, 0};
      if (::poll(&stop, 1, 200) > 0) return false;
    }
  }
  // The shim writes the exit file right after the VM ends; reap it if it is ours.
  if (record.shim_pid > 0) {
    for (int i = 0; i < 200; ++i) {
      pid_t r = ::waitpid(record.shim_pid, nullptr, WNOHANG);
      if (r == record.shim_pid ||
          (r < 0 && errno == ECHILD && !IsSameProcess(record.shim_pid, record.shim_start))) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  return true;
}

}  // namespace vireo::mgmt
