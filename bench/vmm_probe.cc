// vmm_probe: runs a VMM command line as a child and measures it from the outside, the same way
// for every VMM (Vireo, QEMU, the raw-ioctl floor), so the numbers compare.
//
//   vmm_probe startup [common] -- CMD... [--- CMD...]
//       Per run: t0 just before posix_spawn; "first byte" when the first byte of the child's
//       stdout (the guest's serial port, a pipe) is read; "exit" when the child's pidfd reports
//       its exit. Prints the medians in ms.
//   vmm_probe rss [common] --ready TEXT [--settle-ms MS] -- CMD...
//       Waits for TEXT on the child's stdout (the guest says "idle"), waits MS more, reads VmRSS
//       from /proc/PID/status and Pss from /proc/PID/smaps_rollup, then SIGKILLs the child.
//   vmm_probe exits [common] --elf GUEST --mode MODE --n1 N1 --n2 N2 -- CMD... @ELF@ ...
//       Patches two copies of the bench_exits guest (mode MODE, count N1 and N2), runs the
//       command with @ELF@ replaced, R times each, interleaved, and reports
//       median over runs of (t_exit(N2) - t_exit(N1)) / (N2 - N1): the cost of one exit round
//       trip with boot and teardown cancelled. Also reports the guest's own rdtsc count for the
//       loop, converted with the host TSC rate, as a cross-check.
//   vmm_probe patch --elf IN --out OUT --mode MODE --count N
//   vmm_probe blk [common] -- CMD... [--- CMD...]
//       Runs each command (the bench_blk guest, tests/guests/bench_blk.cc) R times, interleaved,
//       after one warm-up run each, and reads the guest's lines "blk CASE ops=N bytes=B
//       cycles=C": C guest TSC ticks for N requests of B bytes in all. Converts C with the host
//       TSC rate and prints, per command and case, the median IOPS and MB/s (10^6 bytes/s) over
//       the runs, with every sample.
//
// Several VMMs at once: `-- CMD_A... --- CMD_B...` with `--labels a,b`. Their runs are
// interleaved (A, B, A, B, ...) so that load from elsewhere on the host, which drifts over
// seconds, hits every VMM alike. Output: one JSON object per command, on stdout.
//
// common: --labels A,B,.. (copied to the output), --runs R (default 11), --expect-status S
// (default: any), --timeout-s T (default 60).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

// Set-up and usage errors: reported once by main, exit status 2.
struct ProbeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string JsonArray(const std::vector<double>& v) {
  std::string s = "[";
  char buf[32];
  for (size_t i = 0; i < v.size(); ++i) {
    std::snprintf(buf, sizeof(buf), "%s%.3f", i ? ", " : "", v[i]);
    s += buf;
  }
  return s + "]";
}

std::string JsonString(const std::string& in) {
  std::string s = "\"";
  for (char c : in) {
    if (c == '"' || c == '\\') s += '\\';
    if (static_cast<unsigned char>(c) < 0x20) continue;  // guest output never needs them here
    s += c;
  }
  return s + "\"";
}

struct Options {
  std::string command;              // the subcommand
  std::vector<std::string> labels;  // one per command
  int runs = 11;
  std::optional<int> expect_status;
  int timeout_s = 60;
  std::string ready;
  int settle_ms = 500;
  std::string elf, out, mode;
  uint64_t n1 = 0, n2 = 0, count = 0;
  std::vector<std::vector<std::string>> commands;  // the child command lines, split at ---
};

// One child's life, as seen from outside.
struct ChildResult {
  double first_byte_ms = -1;  // -1: no output at all
  double exit_ms = 0;
  int status = -1;  // exit status, or 128 + signal
  std::string output;
  std::string stderr_tail;
  long rss_kb = -1, pss_kb = -1;  // rss mode only
};

long ReadKbField(const std::string& path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) return std::strtol(line.c_str() + key.size(), nullptr, 10);
  }
  return -1;
}

std::string TailOfFile(const std::string& path, size_t max) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  return s.size() > max ? s.substr(s.size() - max) : s;
}

// Spawns argv with stdin = /dev/null, stdout = a pipe we read, stderr = a file (kept for error
// reports). When `ready` is set (rss mode), measures memory once it appears and kills the child.
ChildResult RunChild(const std::vector<std::string>& argv, const Options& o,
                     const std::string& stderr_path) {
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) < 0) throw ProbeError("pipe2 failed");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  ChildResult r;
  pid_t pid;
  auto t0 = Clock::now();
  int err = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(pipefd[1]);
  if (err != 0) {
    ::close(pipefd[0]);
    throw ProbeError("cannot start " + argv[0] + ": " + std::strerror(err));
  }
  // pidfd: exit and output are waited for in one poll, so neither time waits on the other.
  int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) throw ProbeError("pidfd_open failed (needs Linux >= 5.3)");

  int out = pipefd[0];
  bool exited = false;
  auto deadline = t0 + std::chrono::seconds(o.timeout_s);
  while (!exited) {
    pollfd fds[2] = {{pidfd, POLLIN, 0}, {out, POLLIN, 0}};
    int nfds = out >= 0 ? 2 : 1;
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (left <= 0) {
      ::kill(pid, SIGKILL);
      r.stderr_tail = "vmm_probe: timed out after " + std::to_string(o.timeout_s) + " s";
      break;
    }
    if (::poll(fds, nfds, left) < 0) {
      if (errno == EINTR) continue;
      throw ProbeError("poll failed");
    }
    if (nfds == 2 && (fds[1].revents & (POLLIN | POLLHUP))) {
      char buf[4096];
      ssize_t n = ::read(out, buf, sizeof(buf));
      if (n > 0) {
        if (r.first_byte_ms < 0) r.first_byte_ms = Ms(Clock::now() - t0);
        r.output.append(buf, static_cast<size_t>(n));
        if (!o.ready.empty() && r.rss_kb < 0 && r.output.find(o.ready) != std::string::npos) {
          std::this_thread::sleep_for(std::chrono::milliseconds(o.settle_ms));
          std::string proc = "/proc/" + std::to_string(pid);
          r.rss_kb = ReadKbField(proc + "/status", "VmRSS:");
          r.pss_kb = ReadKbField(proc + "/smaps_rollup", "Pss:");
          ::kill(pid, SIGKILL);
        }
      } else if (n == 0) {
        ::close(out);
        out = -1;
      }
    }
    if (fds[0].revents & POLLIN) {
      r.exit_ms = Ms(Clock::now() - t0);
      exited = true;
    }
  }
  int wstatus = 0;
  ::waitpid(pid, &wstatus, 0);
  if (!exited) r.exit_ms = Ms(Clock::now() - t0);
  r.status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  if (out >= 0) {  // what the child wrote just before exiting
    ::fcntl(out, F_SETFL, O_NONBLOCK);
    char buf[4096];
    ssize_t n;
    while ((n = ::read(out, buf, sizeof(buf))) > 0) r.output.append(buf, static_cast<size_t>(n));
    ::close(out);
  }
  ::close(pidfd);
  if (r.stderr_tail.empty()) r.stderr_tail = TailOfFile(stderr_path, 2000);
  return r;
}

void CheckStatus(const ChildResult& r, const Options& o, const std::vector<std::string>& argv) {
  if (!o.expect_status || r.status == *o.expect_status) return;
  std::string cmd;
  for (const auto& a : argv) cmd += a + " ";
  throw ProbeError("`" + cmd + "` exited with status " + std::to_string(r.status) + " (expected " +
                   std::to_string(*o.expect_status) + ")\n--- guest output ---\n" + r.output +
                   "\n--- stderr ---\n" + r.stderr_tail);
}

// A scratch directory (patched guests, the child's stderr), removed when done.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/vmm_probe.XXXXXX";
    if (!::mkdtemp(tmpl)) throw ProbeError("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

const char* const kModes[] = {"none", "idle", "pio_cpl0", "pio_cpl3", "mmio_cpl0", "mmio_cpl3"};

uint32_t ModeNumber(const std::string& name) {
  for (uint32_t i = 0; i < std::size(kModes); ++i) {
    if (name == kModes[i]) return i;
  }
  throw ProbeError("unknown mode " + name);
}

// Writes a copy of the bench_exits guest with its parameter block (tests/guests/bench_exits.cc:
// 16-byte magic, then u32 mode, u32 count, little-endian) rewritten.
void PatchGuest(const std::string& in, const std::string& out, uint32_t mode, uint32_t count) {
  std::ifstream f(in, std::ios::binary);
  if (!f) throw ProbeError("cannot read " + in);
  std::string image((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  static const char kMagic[16] = "VIREO_BENCH_PRM";
  std::string magic(kMagic, sizeof(kMagic));
  size_t at = image.find(magic);
  if (at == std::string::npos || image.find(magic, at + 1) != std::string::npos) {
    throw ProbeError(in + " has no (or more than one) bench parameter block");
  }
  std::memcpy(&image[at + 16], &mode, 4);
  std::memcpy(&image[at + 20], &count, 4);
  std::ofstream o(out, std::ios::binary | std::ios::trunc);
  o.write(image.data(), static_cast<std::streamsize>(image.size()));
  if (!o) throw ProbeError("cannot write " + out);
}

// Host TSC ticks per ns, against the monotonic clock over 200 ms. The guest's rdtsc runs at
// the host's rate on this host (no TSC scaling), which the cross-check relies on.
double TscTicksPerNs() {
  auto c0 = Clock::now();
  uint64_t t0 = __rdtsc();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  uint64_t t1 = __rdtsc();
  auto c1 = Clock::now();
  return double(t1 - t0) / std::chrono::duration<double, std::nano>(c1 - c0).count();
}

std::string Header(const std::string& bench, const std::string& label, int runs) {
  return "{\"bench\": " + JsonString(bench) + ", \"label\": " + JsonString(label) +
         ", \"runs\": " + std::to_string(runs);
}

int Startup(const Options& o) {
  TempDir dir;
  size_t k = o.commands.size();
  for (const auto& cmd : o.commands) RunChild(cmd, o, dir / "stderr");  // warm-up: page cache
  std::vector<std::vector<double>> first(k), exit(k);
  for (int i = 0; i < o.runs; ++i) {
    for (size_t c = 0; c < k; ++c) {
      ChildResult r = RunChild(o.commands[c], o, dir / "stderr");
      CheckStatus(r, o, o.commands[c]);
      if (r.first_byte_ms < 0) throw ProbeError("the guest wrote nothing to its serial port");
      first[c].push_back(r.first_byte_ms);
      exit[c].push_back(r.exit_ms);
    }
  }
  for (size_t c = 0; c < k; ++c) {
    std::printf(
        "%s, \"first_byte_ms\": %.3f, \"exit_ms\": %.3f, \"first_byte_min_ms\": %.3f, "
        "\"exit_min_ms\": %.3f, \"first_byte_samples\": %s, \"exit_samples\": %s}\n",
        Header("startup", o.labels[c], o.runs).c_str(), Median(first[c]), Median(exit[c]),
        *std::min_element(first[c].begin(), first[c].end()),
        *std::min_element(exit[c].begin(), exit[c].end()), JsonArray(first[c]).c_str(),
        JsonArray(exit[c]).c_str());
  }
  return 0;
}

int Rss(const Options& o) {
  if (o.ready.empty()) throw ProbeError("rss needs --ready TEXT");
  TempDir dir;
  size_t k = o.commands.size();
  std::vector<std::vector<double>> rss(k), pss(k);
  for (int i = 0; i < o.runs; ++i) {
    for (size_t c = 0; c < k; ++c) {
      ChildResult r = RunChild(o.commands[c], o, dir / "stderr");
      if (r.rss_kb < 0) {
        throw ProbeError("the guest never said \"" + o.ready + "\" (status " +
                         std::to_string(r.status) + ")\n--- guest output ---\n" + r.output +
                         "\n--- stderr ---\n" + r.stderr_tail);
      }
      rss[c].push_back(double(r.rss_kb));
      pss[c].push_back(double(r.pss_kb));
    }
  }
  for (size_t c = 0; c < k; ++c) {
    std::printf(
        "%s, \"rss_kb\": %.0f, \"pss_kb\": %.0f, \"rss_samples\": %s, \"pss_samples\": %s}\n",
        Header("rss", o.labels[c], o.runs).c_str(), Median(rss[c]), Median(pss[c]),
        JsonArray(rss[c]).c_str(), JsonArray(pss[c]).c_str());
  }
  return 0;
}

std::vector<std::string> WithElf(const std::vector<std::string>& argv, const std::string& elf) {
  std::vector<std::string> out;
  for (const auto& a : argv) {
    std::string s = a;
    size_t at = s.find("@ELF@");
    if (at != std::string::npos) s.replace(at, 5, elf);
    out.push_back(s);
  }
  return out;
}

// The guest's own count: "bench MODE n=N cycles=C".
std::optional<double> GuestCycles(const std::string& output, const std::string& mode, uint64_t n) {
  std::string key = "bench " + mode + " n=" + std::to_string(n) + " cycles=";
  size_t at = output.find(key);
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(output.c_str() + at + key.size(), nullptr);
}

int Exits(const Options& o) {
  if (o.elf.empty() || o.mode.empty() || o.n2 <= o.n1) {
    throw ProbeError("exits needs --elf, --mode and --n1 < --n2");
  }
  TempDir dir;
  uint32_t mode = ModeNumber(o.mode);
  std::string elf1 = dir / "n1.elf", elf2 = dir / "n2.elf";
  PatchGuest(o.elf, elf1, mode, static_cast<uint32_t>(o.n1));
  PatchGuest(o.elf, elf2, mode, static_cast<uint32_t>(o.n2));
  auto run = [&](const std::vector<std::string>& argv, uint64_t n) {
    ChildResult r = RunChild(argv, o, dir / "stderr");
    CheckStatus(r, o, argv);
    auto cycles = GuestCycles(r.output, o.mode, n);
    if (!cycles) {
      throw ProbeError("guest output lacks its result line\n--- guest output ---\n" + r.output +
                       "\n--- stderr ---\n" + r.stderr_tail);
    }
    return std::make_pair(r.exit_ms, *cycles);
  };
  size_t k = o.commands.size();
  std::vector<std::vector<std::string>> argv1, argv2;
  for (const auto& cmd : o.commands) {
    argv1.push_back(WithElf(cmd, elf1));
    argv2.push_back(WithElf(cmd, elf2));
    run(argv1.back(), o.n1);  // warm-up
  }
  double dn = double(o.n2 - o.n1);
  std::vector<std::vector<double>> per_exit_ns(k), t1(k), t2(k), guest_cycles(k);
  for (int i = 0; i < o.runs; ++i) {
    for (size_t c = 0; c < k; ++c) {
      auto [ms1, c1] = run(argv1[c], o.n1);
      auto [ms2, c2] = run(argv2[c], o.n2);
      t1[c].push_back(ms1);
      t2[c].push_back(ms2);
      per_exit_ns[c].push_back((ms2 - ms1) * 1e6 / dn);
      guest_cycles[c].push_back((c2 - c1) / dn);
    }
  }
  double tsc_per_ns = TscTicksPerNs();
  for (size_t c = 0; c < k; ++c) {
    std::printf(
        "%s, \"mode\": %s, \"n1\": %lu, \"n2\": %lu, \"ns_per_exit\": %.1f, "
        "\"guest_tsc_ns_per_exit\": %.1f, \"tsc_ghz\": %.3f, \"median_t_n1_ms\": %.3f, "
        "\"median_t_n2_ms\": %.3f, \"ns_per_exit_samples\": %s}\n",
        Header("exits", o.labels[c], o.runs).c_str(), JsonString(o.mode).c_str(),
        static_cast<unsigned long>(o.n1), static_cast<unsigned long>(o.n2), Median(per_exit_ns[c]),
        Median(guest_cycles[c]) / tsc_per_ns, tsc_per_ns, Median(t1[c]), Median(t2[c]),
        JsonArray(per_exit_ns[c]).c_str());
  }
  return 0;
}

// One "blk CASE ops=N bytes=B cycles=C" line of the bench_blk guest.
struct BlkLine {
  std::string name;
  double ops = 0, bytes = 0, cycles = 0;
};

std::vector<BlkLine> BlkLines(const std::string& output) {
  std::vector<BlkLine> out;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    char name[64];
    unsigned long ops, bytes, cycles;
    if (std::sscanf(line.c_str(), "blk %63s ops=%lu bytes=%lu cycles=%lu", name, &ops, &bytes,
                    &cycles) == 4) {
      out.push_back({name, double(ops), double(bytes), double(cycles)});
    }
  }
  return out;
}

int Blk(const Options& o) {
  TempDir dir;
  size_t k = o.commands.size();
  auto run = [&](size_t c) {
    ChildResult r = RunChild(o.commands[c], o, dir / "stderr");
    CheckStatus(r, o, o.commands[c]);
    std::vector<BlkLine> lines = BlkLines(r.output);
    if (lines.empty() || r.output.find("blk done") == std::string::npos) {
      throw ProbeError("the guest did not finish its cases\n--- guest output ---\n" + r.output +
                       "\n--- stderr ---\n" + r.stderr_tail);
    }
    return lines;
  };
  for (size_t c = 0; c < k; ++c) run(c);  // warm-up: page cache, the image's pages
  std::vector<std::vector<std::string>> names(k);
  std::vector<std::vector<std::vector<double>>> iops(k), mbs(k);
  for (int i = 0; i < o.runs; ++i) {
    for (size_t c = 0; c < k; ++c) {
      std::vector<BlkLine> lines = run(c);
      if (names[c].empty()) {
        for (const auto& l : lines) names[c].push_back(l.name);
        iops[c].resize(lines.size());
        mbs[c].resize(lines.size());
      }
      if (lines.size() != names[c].size()) {
        throw ProbeError("the guest's cases changed between runs");
      }
      for (size_t j = 0; j < lines.size(); ++j) {
        // Kept as cycles for now; converted below once the TSC rate is known.
        iops[c][j].push_back(lines[j].ops / lines[j].cycles);
        mbs[c][j].push_back(lines[j].bytes / lines[j].cycles);
      }
    }
  }
  double tsc_per_ns = TscTicksPerNs();
  for (size_t c = 0; c < k; ++c) {
    for (size_t j = 0; j < names[c].size(); ++j) {
      // per tick -> per second: * ticks/ns * 1e9; bytes/s -> MB/s: / 1e6.
      for (double& x : iops[c][j]) x *= tsc_per_ns * 1e9;
      for (double& x : mbs[c][j]) x *= tsc_per_ns * 1e3;
      std::printf(
          "%s, \"case\": %s, \"iops\": %.0f, \"mb_s\": %.1f, \"tsc_ghz\": %.3f, "
          "\"iops_samples\": %s, \"mb_s_samples\": %s}\n",
          Header("blk", o.labels[c], o.runs).c_str(), JsonString(names[c][j]).c_str(),
          Median(iops[c][j]), Median(mbs[c][j]), tsc_per_ns, JsonArray(iops[c][j]).c_str(),
          JsonArray(mbs[c][j]).c_str());
    }
  }
  return 0;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(item);
  return out;
}

Options Parse(int argc, char** argv) {
  if (argc < 2) throw ProbeError("missing subcommand");
  Options o;
  o.command = argv[1];
  int i = 2;
  auto value = [&]() -> std::string {
    if (i + 1 >= argc) throw ProbeError(std::string(argv[i]) + " needs a value");
    return argv[++i];
  };
  auto number = [&]() -> uint64_t { return std::stoull(value()); };
  for (; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--") {
      o.commands.emplace_back();
      for (++i; i < argc; ++i) {
        if (std::string(argv[i]) == "---") {
          o.commands.emplace_back();
        } else {
          o.commands.back().push_back(argv[i]);
        }
      }
      break;
    }
    if (a == "--labels") {
      o.labels = SplitCommas(value());
    } else if (a == "--runs") {
      o.runs = static_cast<int>(number());
    } else if (a == "--expect-status") {
      o.expect_status = static_cast<int>(number());
    } else if (a == "--timeout-s") {
      o.timeout_s = static_cast<int>(number());
    } else if (a == "--ready") {
      o.ready = value();
    } else if (a == "--settle-ms") {
      o.settle_ms = static_cast<int>(number());
    } else if (a == "--elf") {
      o.elf = value();
    } else if (a == "--out") {
      o.out = value();
    } else if (a == "--mode") {
      o.mode = value();
    } else if (a == "--n1") {
      o.n1 = number();
    } else if (a == "--n2") {
      o.n2 = number();
    } else if (a == "--count") {
      o.count = number();
    } else {
      throw ProbeError("unknown option " + a);
    }
  }
  if (o.runs < 1) throw ProbeError("--runs must be >= 1");
  if (o.command == "patch") return o;
  if (o.commands.empty()) throw ProbeError("missing -- COMMAND...");
  for (const auto& cmd : o.commands) {
    if (cmd.empty()) throw ProbeError("empty command between ---");
  }
  if (o.labels.empty()) {
    for (size_t c = 0; c < o.commands.size(); ++c) o.labels.push_back("cmd" + std::to_string(c));
  }
  if (o.labels.size() != o.commands.size()) {
    throw ProbeError("--labels names " + std::to_string(o.labels.size()) + " commands, " +
                     std::to_string(o.commands.size()) + " were given");
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    Options o = Parse(argc, argv);
    if (o.command == "startup") return Startup(o);
    if (o.command == "rss") return Rss(o);
    if (o.command == "exits") return Exits(o);
    if (o.command == "blk") return Blk(o);
    if (o.command == "patch") {
      PatchGuest(o.elf, o.out, ModeNumber(o.mode), static_cast<uint32_t>(o.count));
      return 0;
    }
    throw ProbeError("unknown subcommand " + o.command);
  } catch (const std::exception& e) {
    std::fprintf(stderr,
                 "vmm_probe: %s\n"
                 "usage: vmm_probe startup|rss|exits|blk|patch [options] -- CMD...\n"
                 "(see the comment at the top of bench/vmm_probe.cc)\n",
                 e.what());
    return 2;
  }
}
