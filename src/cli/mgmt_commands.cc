#include "cli/mgmt_commands.h"

#include <fmt/format.h>
#include <poll.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/log.h"
#include "cli/run_command.h"
#include "mgmt/client.h"
#include "mgmt/daemon.h"
#include "mgmt/daemon_server.h"
#include "mgmt/domain.h"

namespace vireo::cli {
namespace {

using mgmt::Client;
using mgmt::Reply;
using nlohmann::json;

constexpr char kEscape = 0x1d;  // Ctrl-], as virsh console

int Error(const std::string& message) {
  fmt::print(stderr, "error: {}\n", message);
  return kExitError;
}

// A daemon call for a command: returns the JSON body of a 2xx answer, or prints virsh's
// two-line error ("error: Failed to start domain 'x'" / "error: <reason>") and fails.
struct Call {
  std::unique_ptr<Client> client;
  std::string failure;  // first error line, e.g. "Failed to start domain 'x'"
  std::string domain;   // the domain the command names, for "failed to get domain"

  std::optional<json> Do(const std::string& method, const std::string& path,
                         const std::string& body = "") {
    auto reply = client->Call(method, path, body);
    if (!reply) {
      Error(reply.error().message);
      return std::nullopt;
    }
    json data = json::parse(reply->body, nullptr, false);
    if (reply->status >= 200 && reply->status < 300) return data;
    std::string reason = data.is_object() ? data.value("error", reply->body) : reply->body;
    if (reply->status == 404 && reason.rfind("Network not found", 0) == 0) {
      fmt::print(stderr, "error: failed to get network '{}'\n", domain);
      return std::nullopt;
    }
    if (reply->status == 404 && reason.rfind("Domain not found", 0) == 0) {
      // virsh's wording for an unknown name, whatever the command.
      fmt::print(stderr, "error: failed to get domain '{}'\n", domain);
      return std::nullopt;
    }
    if (!failure.empty()) fmt::print(stderr, "error: {}\n", failure);
    Error(reason);
    return std::nullopt;
  }
};

std::optional<Call> Open(const std::string& connect, std::string failure = "",
                         std::string domain = "") {
  auto client = Client::Connect(mgmt::ResolveConnectUri(connect));
  if (!client) {
    Error(client.error().message);
    return std::nullopt;
  }
  return Call{std::move(*client), std::move(failure), std::move(domain)};
}

std::string VirshState(const std::string& state) { return state == "shutoff" ? "shut off" : state; }

int PrintJson(const json& data) {
  fmt::print("{}\n", data.dump(2));
  return kExitOk;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Raw terminal for the console, restored on every way out.
class RawTerminal {
 public:
  RawTerminal() {
    if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }

 private:
  termios saved_{};
  bool active_ = false;
};

int RunDaemon(const std::string& state_dir_in, const std::string& socket_in, bool no_cgroups,
              const std::string& listen, const std::string& cert, const std::string& key,
              const std::string& token_file, bool verbose) {
  if (verbose) SetLogLevel(LogLevel::kInfo);
  const bool root = ::geteuid() == 0;
  std::string state_dir = state_dir_in;
  if (state_dir.empty()) {
    const char* home = std::getenv("HOME");
    state_dir = root ? "/var/lib/vireo" : std::string(home ? home : "/tmp") + "/.local/share/vireo";
  }
  std::string socket = socket_in.empty() ? mgmt::DefaultSocketPath() : socket_in;
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(socket).parent_path(), ec);
  mgmt::ServeOptions serve{socket, listen, cert, key, ""};
  if (!token_file.empty()) {
    auto token = ReadFile(token_file);
    if (!token) return Error(fmt::format("--token-file {}: cannot read it", token_file));
    while (!token->empty() && std::isspace(static_cast<unsigned char>(token->back())))
      token->pop_back();
    if (token->empty()) return Error(fmt::format("--token-file {}: empty", token_file));
    serve.token = *token;
  }
  mgmt::DaemonOptions options;
  options.state_dir = std::filesystem::absolute(state_dir).string();
  options.vireo_binary = std::filesystem::read_symlink("/proc/self/exe", ec).string();
  options.cgroups = !no_cgroups;
  auto daemon = mgmt::Daemon::Open(options);
  if (!daemon) return Error(daemon.error().message);
  if (auto s = mgmt::Serve(**daemon, serve); !s) return Error(s.error().message);
  return kExitOk;
}

int Console(const std::string& connect, const std::string& name, bool history) {
  auto out_call = Open(connect, "", name);
  auto in_call = Open(connect, "", name);
  if (!out_call || !in_call) return kExitError;
  auto info = out_call->Do("GET", "/domains/" + name);
  if (!info) {
    return kExitError;
  }
  const std::string state = info->value("state", "");
  if (state != "running" && state != "paused") {
    return Error(fmt::format("Requested operation is not valid: domain '{}' is not running", name));
  }
  fmt::print("Connected to domain '{}'\nEscape character is ^] (Ctrl + ])\n", name);
  std::fflush(stdout);
  RawTerminal terminal;
  std::atomic<bool> done{false};
  std::atomic<int> status{kExitOk};
  std::thread output([&] {
    std::string offset = history ? "0" : "";
    while (!done) {
      std::string path = fmt::format("/domains/{}/console?wait_ms=500{}", name,
                                     offset.empty() ? "" : "&offset=" + offset);
      auto reply = out_call->client->Call("GET", path);
      if (!reply || reply->status != 200) {
        status = kExitError;
        break;
      }
      if (!reply->body.empty()) {
        [[maybe_unused]] ssize_t n = ::write(STDOUT_FILENO, reply->body.data(), reply->body.size());
      }
      offset = reply->headers["X-Console-Offset"];
      const std::string now = reply->headers["X-Domain-State"];
      if (reply->body.empty() && now != "running" && now != "paused") break;  // it ended
    }
    done = true;
  });
  bool stdin_open = true;
  while (!done) {
    if (!stdin_open) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    pollfd pfd = {STDIN_FILENO, POLLIN, 0};
    if (::poll(&pfd, 1, 100) <= 0) continue;
    char buffer[256];
    ssize_t n = ::read(STDIN_FILENO, buffer, sizeof(buffer));
    if (n <= 0) {
      stdin_open = false;  // keep following the output until Ctrl-] or the VM ends
      continue;
    }
    std::string bytes(buffer, static_cast<size_t>(n));
    size_t escape = bytes.find(kEscape);
    if (escape != std::string::npos) bytes.resize(escape);
    if (!bytes.empty())
      in_call->client->Call("POST", "/domains/" + name + "/console", bytes,
                            "application/octet-stream");
    if (escape != std::string::npos) break;
  }
  done = true;
  output.join();
  fmt::print("\n");
  return status;
}

int Event(const std::string& connect, const std::string& domain, bool loop, int timeout_s,
          bool as_json) {
  auto call = Open(connect);
  if (!call) return kExitError;
  auto first = call->Do("GET", "/events?since=0");
  if (!first) return kExitError;
  uint64_t since = first->value("last", uint64_t{0});
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int count = 0;
  while (true) {
    int wait_ms = 30000;
    if (timeout_s > 0) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) break;
      wait_ms = static_cast<int>(std::min<int64_t>(left.count(), 30000));
    }
    auto batch = call->Do("GET", fmt::format("/events?since={}&timeout_ms={}", since, wait_ms));
    if (!batch) return kExitError;
    for (const json& e : (*batch)["events"]) {
      since = std::max(since, e.value("seq", uint64_t{0}));
      if (!domain.empty() && e.value("domain", "") != domain) continue;
      if (as_json) {
        fmt::print("{}\n", e.dump());
      } else {
        fmt::print("event 'lifecycle' for domain '{}': {} {}\n", e.value("domain", ""),
                   e.value("type", ""), e.value("detail", ""));
      }
      std::fflush(stdout);
      ++count;
      if (!loop) return kExitOk;
    }
  }
  if (!as_json) fmt::print("events received: {}\n", count);
  return kExitOk;
}

// virsh's scaled integers (setmem SIZE): a bare number is KiB; units as libvirt's, a single
// letter being a power of 1024 in either case (k, M, g, ...).
Result<uint64_t> ParseVirshSize(const std::string& text) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + digits, value);
  std::string unit = text.substr(digits);
  if (unit.size() == 1) {
    const char c = static_cast<char>(std::tolower(static_cast<unsigned char>(unit[0])));
    unit = c == 'b'   ? "b"
           : c == 'k' ? "KiB"
           : c == 'm' ? "MiB"
           : c == 'g' ? "GiB"
           : c == 't' ? "TiB"
                      : unit;
  }
  auto scaled = digits == 0 || ec != std::errc() ? Result<uint64_t>(Fail("malformed"))
                                                 : mgmt::ScaleUnit(value, unit);
  if (!scaled) {
    return Fail("Scaled numeric value '{}' for <size> option is malformed or out of range ({})",
                text, scaled.error().message);
  }
  return *scaled;
}

// migrate --live: start it through the daemon, then follow it (progress on stderr) until the
// source domain has ended after a completed migration, or the migration failed.
int Migrate(const std::string& connect, const std::string& name, const std::string& uri,
            uint64_t max_downtime_ms, uint64_t bandwidth_mibs, bool as_json) {
  auto call = Open(connect, fmt::format("Failed to migrate domain '{}'", name), name);
  if (!call) return kExitError;
  json request = {{"uri", uri}};
  if (max_downtime_ms) request["max_downtime_ms"] = max_downtime_ms;
  // MiB/s (virsh's unit) to the VMM's megabits per second.
  if (bandwidth_mibs) request["bandwidth_mbps"] = (bandwidth_mibs * 8 * 1048576 + 999999) / 1000000;
  std::optional<json> status = call->Do("PUT", "/domains/" + name + "/migrate", request.dump());
  std::string last_line;
  while (true) {
    if (!status) return kExitError;
    const std::string state = status->value("state", "");
    const json domain = status->value("domain", json::object());
    const std::string domain_state = domain.value("state", "");
    const bool domain_active = domain_state == "running" || domain_state == "paused";
    if (!as_json && state == "active") {
      const std::string line =
          fmt::format("Migration: {}, round {}, {} pages remaining, {} MiB sent",
                      status->value("phase", "active"), status->value("rounds", uint64_t{0}),
                      status->value("remaining_pages", uint64_t{0}),
                      status->value("bytes_sent", uint64_t{0}) >> 20);
      if (line != last_line) fmt::print(stderr, "{}\n", line);
      last_line = line;
    }
    if (state == "failed") {
      if (as_json) PrintJson(*status);
      fmt::print(stderr, "error: Failed to migrate domain '{}'\n", name);
      return Error("operation failed: migration failed: " + status->value("error", "unknown"));
    }
    if (!domain_active) {
      if (domain.value("reason", "") != "migrated") {
        fmt::print(stderr, "error: Failed to migrate domain '{}'\n", name);
        return Error(fmt::format("the domain ended during the migration ({}: {})",
                                 VirshState(domain_state), domain.value("reason", "")));
      }
      if (as_json) return PrintJson(*status);
      // The source's own last word ("migrated to URI: N rounds, ... downtime D ms, ...").
      fmt::print(stderr, "Migration: completed: {}\n", status->value("summary", "migrated"));
      fmt::print("Domain '{}' migrated to {}\n\n", name, uri);
      return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = call->Do("GET", "/domains/" + name + "/migrate");
  }
}

}  // namespace

CLI::App* MgmtCommands::Add(CLI::App& app, const std::string& name, const std::string& help,
                            std::function<int()> run) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->add_option("-c,--connect", common_.connect,
                  "Daemon to use: socket path, unix:///PATH or https://HOST:PORT "
                  "(default: $VIREO_CONNECT, else " +
                      mgmt::DefaultSocketPath() + ")");
  commands_.push_back({sub, std::move(run)});
  return sub;
}

MgmtCommands::MgmtCommands(CLI::App& app) {
  CLI::App* daemon = app.add_subcommand("daemon", "Run the management daemon in the foreground");
  daemon->add_option("--state-dir", state_dir_,
                     "Definitions, logs and runtime state (default /var/lib/vireo for root)");
  daemon->add_option("--socket", socket_, "API socket (default " + mgmt::DefaultSocketPath() + ")");
  daemon->add_flag("--no-cgroups", no_cgroups_, "Run VMs without cgroup limits");
  daemon->add_option("--listen", listen_, "Also serve HTTPS on HOST:PORT (needs the next three)");
  daemon->add_option("--tls-cert", tls_cert_, "PEM certificate for --listen");
  daemon->add_option("--tls-key", tls_key_, "PEM private key for --listen");
  daemon->add_option("--token-file", token_file_,
                     "File holding the bearer token --listen requires");
  daemon->add_flag("-v,--verbose", verbose_, "Log what the daemon does");
  commands_.push_back({daemon, [this] {
                         return RunDaemon(state_dir_, socket_, no_cgroups_, listen_, tls_cert_,
                                          tls_key_, token_file_, verbose_);
                       }});

  auto json_flag = [this](CLI::App* sub) {
    sub->add_flag("--json", common_.json, "Print the daemon's JSON answer");
  };
  auto name_arg = [this](CLI::App* sub) {
    sub->add_option("domain", name_, "Domain name")->required();
  };

  CLI::App* list = Add(app, "list", "List domains (running ones; --all for every one)", [this] {
    auto call = Open(common_.connect);
    if (!call) return kExitError;
    auto data = call->Do("GET", all_ ? "/domains?all=1" : "/domains");
    if (!data) return kExitError;
    if (common_.json) return PrintJson(*data);
    fmt::print(" {:<4} {:<20} {}\n", "Id", "Name", "State");
    fmt::print("{}\n", std::string(36, '-'));
    for (const json& d : (*data)["domains"]) {
      int id = d.value("id", -1);
      fmt::print(" {:<4} {:<20} {}\n", id >= 0 ? std::to_string(id) : "-", d.value("name", ""),
                 VirshState(d.value("state", "")));
    }
    fmt::print("\n");
    return kExitOk;
  });
  list->add_flag("--all", all_, "Include inactive domains");
  json_flag(list);

  CLI::App* define =
      Add(app, "define", "Define a domain from libvirt XML or Vireo JSON/TOML", [this] {
        auto text = ReadFile(file_);
        if (!text)
          return Error(fmt::format("Failed to open file '{}': {}", file_, std::strerror(errno)));
        auto call = Open(common_.connect, fmt::format("Failed to define domain from {}", file_));
        if (!call) return kExitError;
        auto data =
            call->Do("POST", "/domains", json{{"definition", *text}, {"strict", strict_}}.dump());
        if (!data) return kExitError;
        for (const json& w : (*data)["warnings"]) {
          fmt::print(stderr, "warning: {} (ignored)\n", w.get<std::string>());
        }
        if (common_.json) return PrintJson(*data);
        fmt::print("Domain '{}' defined from {}\n\n", data->value("name", ""), file_);
        return kExitOk;
      });
  define->add_option("file", file_, "Definition file (XML, JSON or TOML)")->required();
  define->add_flag("--strict", strict_, "Refuse elements Vireo does not support");
  json_flag(define);

  struct Action {
    const char* name;
    const char* help;
    const char* method;
    const char* path;  // after /domains/NAME
    const char* failure;
    const char* success;
  };
  static constexpr Action kActions[] = {
      {"undefine", "Remove an inactive domain's definition", "DELETE", "",
       "Failed to undefine domain '{}'", "Domain '{}' has been undefined"},
      {"start", "Start a defined domain", "PUT", "/start", "Failed to start domain '{}'",
       "Domain '{}' started"},
      {"shutdown", "Ask the guest to power off (ACPI power button)", "PUT", "/shutdown",
       "Failed to shutdown domain '{}'", "Domain '{}' is being shutdown"},
      {"destroy", "Stop a domain immediately", "PUT", "/destroy", "Failed to destroy domain '{}'",
       "Domain '{}' destroyed"},
      {"reboot", "Reset a domain", "PUT", "/reboot", "Failed to reboot domain '{}'",
       "Domain '{}' is being rebooted"},
      {"suspend", "Pause a domain's vCPUs and devices", "PUT", "/suspend",
       "Failed to suspend domain '{}'", "Domain '{}' suspended"},
      {"resume", "Resume a suspended domain", "PUT", "/resume", "Failed to resume domain '{}'",
       "Domain '{}' resumed"},
  };
  for (const Action& action : kActions) {
    CLI::App* sub = Add(app, action.name, action.help, [this, &action] {
      auto call = Open(common_.connect, fmt::format(fmt::runtime(action.failure), name_), name_);
      if (!call) return kExitError;
      // start --incoming: run the domain as the destination of a live migration.
      const bool incoming = std::string_view(action.name) == "start" && !incoming_.empty();
      const std::string body = incoming ? json{{"incoming", incoming_}}.dump() : "";
      // "failed to get domain" names the domain.
      auto data = call->Do(action.method, "/domains/" + name_ + action.path, body);
      if (!data) return kExitError;
      if (common_.json) return PrintJson(*data);
      if (incoming) {
        fmt::print("Domain '{}' is waiting for an incoming migration on {}\n\n", name_,
                   data->value("incoming_uri", incoming_));
        return kExitOk;
      }
      fmt::print("{}\n\n", fmt::format(fmt::runtime(action.success), name_));
      return kExitOk;
    });
    name_arg(sub);
    json_flag(sub);
    if (std::string_view(action.name) == "start") {
      sub->add_option("--incoming", incoming_,
                      "Wait for a live migration on tcp:HOST:PORT (port 0: any) instead of "
                      "booting; the domain is paused until it lands");
    }
  }

  CLI::App* dominfo = Add(app, "dominfo", "Show a domain's state and configuration", [this] {
    auto call = Open(common_.connect, "", name_);
    if (!call) return kExitError;
    auto d = call->Do("GET", "/domains/" + name_);
    if (!d) return kExitError;
    if (common_.json) return PrintJson(*d);
    int id = d->value("id", -1);
    auto row = [](const char* key, const std::string& value) {
      fmt::print("{:<16}{}\n", std::string(key) + ":", value);
    };
    row("Id", id >= 0 ? std::to_string(id) : "-");
    row("Name", d->value("name", ""));
    row("UUID", d->value("uuid", ""));
    row("OS Type", "hvm");
    row("State", VirshState(d->value("state", "")));
    if (d->contains("reason") && d->value("state", "") == "crashed")
      row("Reason", d->value("reason", ""));
    row("CPU(s)", std::to_string(d->value("vcpus", 0)));
    if (d->contains("cpu_time_ns")) {
      row("CPU time", fmt::format("{:.1f}s", d->value("cpu_time_ns", uint64_t{0}) / 1e9));
    }
    row("Max memory", fmt::format("{} KiB", d->value("memory_bytes", uint64_t{0}) >> 10));
    row("Used memory", fmt::format("{} KiB", d->value("current_memory_bytes", uint64_t{0}) >> 10));
    row("Persistent", "yes");
    row("Autostart", d->value("autostart", false) ? "enable" : "disable");
    if (d->contains("pid")) row("PID", std::to_string(d->value("pid", 0)));
    fmt::print("\n");
    return kExitOk;
  });
  name_arg(dominfo);
  json_flag(dominfo);

  CLI::App* domstate = Add(app, "domstate", "Show a domain's state", [this] {
    auto call = Open(common_.connect, "", name_);
    if (!call) return kExitError;
    auto d = call->Do("GET", "/domains/" + name_);
    if (!d) return kExitError;
    if (common_.json)
      return PrintJson({{"state", d->value("state", "")}, {"reason", d->value("reason", "")}});
    if (reason_) {
      fmt::print("{} ({})\n\n", VirshState(d->value("state", "")), d->value("reason", ""));
    } else {
      fmt::print("{}\n\n", VirshState(d->value("state", "")));
    }
    return kExitOk;
  });
  name_arg(domstate);
  json_flag(domstate);
  domstate->add_flag("--reason", reason_, "Also print why the domain is in that state");

  CLI::App* setmem =
      Add(app, "setmem", "Change a domain's current memory through its balloon", [this] {
        auto size = ParseVirshSize(size_);
        if (!size) return Error(size.error().message);
        if (current_ && (live_ || config_)) {
          return Error("--current excludes --live and --config");
        }
        auto call = Open(common_.connect, "", name_);
        if (!call) return kExitError;
        auto data =
            call->Do("PUT", "/domains/" + name_ + "/memory",
                     json{{"size_bytes", *size}, {"live", live_}, {"config", config_}}.dump());
        if (!data) return kExitError;
        if (common_.json) return PrintJson(*data);
        return kExitOk;  // virsh prints nothing
      });
  name_arg(setmem);
  setmem->add_option("size", size_, "New memory size: KiB, or with a unit (512M, 1GiB, 4096k)")
      ->required();
  setmem->add_flag("--live", live_, "Change the running domain");
  setmem->add_flag("--config", config_, "Change the definition (its currentMemory)");
  setmem->add_flag("--current", current_,
                   "The running domain if it runs, else the definition (the default)");
  json_flag(setmem);

  CLI::App* migrate = Add(app, "migrate", "Live-migrate a running domain to another host", [this] {
    if (!live_) {
      return Error("Vireo migrates running domains only live (pre-copy); add --live");
    }
    return Migrate(common_.connect, name_, uri_, max_downtime_ms_, bandwidth_mibs_, common_.json);
  });
  migrate->add_flag("--live", live_, "Migrate while the guest runs (required)");
  name_arg(migrate);
  migrate
      ->add_option("desturi", uri_,
                   "tcp:HOST:PORT where the destination waits (vireo start --incoming)")
      ->required();
  migrate->add_option("--max-downtime", max_downtime_ms_,
                      "Longest pause allowed for the final copy, in ms (default 300)");
  migrate->add_option("--bandwidth", bandwidth_mibs_, "Bandwidth limit in MiB/s (default none)");
  json_flag(migrate);

  CLI::App* dumpxml = Add(app, "dumpxml", "Print a domain's definition as libvirt XML", [this] {
    auto call = Open(common_.connect, "", name_);
    if (!call) return kExitError;
    auto d = call->Do("GET", fmt::format("/domains/{}/definition?format={}", name_,
                                         common_.json ? "json"
                                         : toml_      ? "toml"
                                                      : "xml"));
    if (!d) return kExitError;
    if (common_.json) return PrintJson((*d)["definition"]);
    fmt::print("{}", (*d)["definition"].get<std::string>());
    return kExitOk;
  });
  name_arg(dumpxml);
  dumpxml->add_flag("--json", common_.json, "Print Vireo's JSON format instead");
  dumpxml->add_flag("--toml", toml_, "Print Vireo's format as TOML instead");

  CLI::App* domstats = Add(app, "domstats", "Show a running domain's statistics", [this] {
    auto call = Open(common_.connect, "", name_);
    if (!call) return kExitError;
    auto d = call->Do("GET", "/domains/" + name_ + "/stats");
    if (!d) return kExitError;
    if (common_.json) return PrintJson(*d);
    fmt::print("Domain: '{}'\n  state.state={}\n", name_, VirshState(d->value("state", "")));
    if (d->contains("cpu_time_ns"))
      fmt::print("  cpu.time={}\n", d->value("cpu_time_ns", uint64_t{0}));
    if (d->contains("cgroup_memory_bytes")) {
      fmt::print("  balloon.rss={}\n", d->value("cgroup_memory_bytes", uint64_t{0}) >> 10);
    }
    if (d->contains("counters")) {
      const json& counters = (*d)["counters"];
      if (counters.contains("vcpus") && counters["vcpus"].is_array()) {
        for (const json& vcpu : counters["vcpus"]) {
          if (!vcpu.contains("exits") || !vcpu["exits"].is_object()) continue;
          for (const auto& [reason, count] : vcpu["exits"].items()) {
            fmt::print("  vcpu.{}.exits.{}={}\n", vcpu.value("id", 0), reason, count.dump());
          }
        }
      }
    }
    fmt::print("\n");
    return kExitOk;
  });
  name_arg(domstats);
  json_flag(domstats);

  CLI::App* autostart = Add(app, "autostart", "Start a domain when the daemon starts", [this] {
    auto call = Open(common_.connect, "", name_);
    if (!call) return kExitError;
    auto d =
        call->Do("PUT", "/domains/" + name_ + "/autostart", json{{"enable", !disable_}}.dump());
    if (!d) return kExitError;
    if (common_.json) return PrintJson(*d);
    fmt::print("Domain '{}' {}\n\n", name_,
               disable_ ? "unmarked as autostarted" : "marked as autostarted");
    return kExitOk;
  });
  name_arg(autostart);
  autostart->add_flag("--disable", disable_, "Do not autostart it");
  json_flag(autostart);

  CLI::App* console = Add(app, "console", "Attach to a domain's serial console (Ctrl-] detaches)",
                          [this] { return Console(common_.connect, name_, history_); });
  name_arg(console);
  console->add_flag("--history", history_,
                    "Print the console output since the domain booted first");

  CLI::App* vcpuinfo = Add(app, "vcpuinfo", "Show a running domain's vCPU threads", [this] {
    auto call = Open(common_.connect, "", name_);
    if (!call) return kExitError;
    auto data = call->Do("GET", "/domains/" + name_ + "/vcpus");
    if (!data) return kExitError;
    if (common_.json) return PrintJson(*data);
    const unsigned host_cpus = data->value("host_cpus", 0u);
    for (const json& v : (*data)["vcpus"]) {
      std::string map(host_cpus, '-');
      for (const json& cpu : v.value("affinity", json::array())) {
        if (cpu.get<unsigned>() < host_cpus) map[cpu.get<unsigned>()] = 'y';
      }
      fmt::print("{:<16}{}\n", "VCPU:", v.value("vcpu", 0));
      fmt::print("{:<16}{}\n", "CPU:", v.value("cpu", -1));
      fmt::print("{:<16}{}\n", "State:", v.value("state", ""));
      fmt::print("{:<16}{:.1f}s\n", "CPU time:", v.value("cpu_time_ns", uint64_t{0}) / 1e9);
      fmt::print("{:<16}{}\n\n", "CPU Affinity:", map);
    }
    return kExitOk;
  });
  name_arg(vcpuinfo);
  json_flag(vcpuinfo);

  CLI::App* vcpupin = Add(app, "vcpupin", "Pin a vCPU of a domain to host CPUs", [this] {
    auto call = Open(common_.connect,
                     fmt::format("Failed to pin vcpu {} of domain '{}'", vcpu_, name_), name_);
    if (!call) return kExitError;
    auto data = call->Do("PUT", fmt::format("/domains/{}/vcpus/{}/pin", name_, vcpu_),
                         json{{"cpuset", file_}, {"config", config_}}.dump());
    if (!data) return kExitError;
    if (common_.json) return PrintJson(*data);
    return kExitOk;  // virsh prints nothing
  });
  name_arg(vcpupin);
  vcpupin->add_option("vcpu", vcpu_, "vCPU number")->required();
  vcpupin->add_option("cpulist", file_, "Host CPUs, e.g. 0-2,4")->required();
  vcpupin->add_flag("--config", config_, "Also change the definition (one host CPU)");
  json_flag(vcpupin);

  CLI::App* snap_create =
      Add(app, "snapshot-create", "Snapshot a running domain (memory and devices)", [this] {
        if (snapshot_.empty())
          snapshot_ = std::to_string(std::time(nullptr));  // virsh's default name
        auto call = Open(common_.connect,
                         fmt::format("Failed to create snapshot of domain '{}'", name_), name_);
        if (!call) return kExitError;
        auto data =
            call->Do("POST", "/domains/" + name_ + "/snapshots", json{{"name", snapshot_}}.dump());
        if (!data) return kExitError;
        if (common_.json) return PrintJson(*data);
        fmt::print("Domain snapshot {} created\n", snapshot_);
        return kExitOk;
      });
  name_arg(snap_create);
  snap_create->add_option("--name", snapshot_, "Snapshot name (default: the current time)");
  json_flag(snap_create);

  CLI::App* snap_list = Add(app, "snapshot-list", "List a domain's snapshots", [this] {
    auto call = Open(common_.connect, "", name_);
    if (!call) return kExitError;
    auto data = call->Do("GET", "/domains/" + name_ + "/snapshots");
    if (!data) return kExitError;
    if (common_.json) return PrintJson(*data);
    fmt::print(" {:<20} {:<26} {}\n", "Name", "Creation Time", "State");
    fmt::print("{}\n", std::string(56, '-'));
    for (const json& snap : (*data)["snapshots"]) {
      std::time_t created = snap.value("created", 0);
      char when[64] = "";
      std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %z", std::localtime(&created));
      fmt::print(" {:<20} {:<26} {}\n", snap.value("name", ""), when, snap.value("state", ""));
    }
    fmt::print("\n");
    return kExitOk;
  });
  name_arg(snap_list);
  json_flag(snap_list);

  struct SnapAction {
    const char* name;
    const char* help;
    const char* method;
    const char* suffix;
    const char* failure;
    const char* success;
  };
  static constexpr SnapAction kSnapActions[] = {
      {"snapshot-revert", "End the domain and resume it from a snapshot", "PUT", "/revert",
       "Failed to revert snapshot {1} of domain '{0}'", "Domain '{0}' reverted to snapshot {1}"},
      {"snapshot-delete", "Delete a snapshot", "DELETE", "", "Failed to delete snapshot {1}",
       "Domain snapshot {1} deleted"},
  };
  for (const SnapAction& action : kSnapActions) {
    CLI::App* sub = Add(app, action.name, action.help, [this, &action] {
      auto call =
          Open(common_.connect, fmt::format(fmt::runtime(action.failure), name_, snapshot_), name_);
      if (!call) return kExitError;
      auto data = call->Do(action.method, fmt::format("/domains/{}/snapshots/{}{}", name_,
                                                      snapshot_, action.suffix));
      if (!data) return kExitError;
      if (common_.json) return PrintJson(*data);
      fmt::print("{}\n\n", fmt::format(fmt::runtime(action.success), name_, snapshot_));
      return kExitOk;
    });
    name_arg(sub);
    sub->add_option("snapshot", snapshot_, "Snapshot name")->required();
    json_flag(sub);
  }

  CLI::App* net_define =
      Add(app, "net-define", "Define a network from libvirt network XML", [this] {
        auto text = ReadFile(file_);
        if (!text)
          return Error(fmt::format("Failed to open file '{}': {}", file_, std::strerror(errno)));
        auto call = Open(common_.connect, fmt::format("Failed to define network from {}", file_));
        if (!call) return kExitError;
        auto data = call->Do("POST", "/networks", json{{"definition", *text}}.dump());
        if (!data) return kExitError;
        for (const json& w : (*data)["warnings"]) {
          fmt::print(stderr, "warning: {} (ignored)\n", w.get<std::string>());
        }
        if (common_.json) return PrintJson(*data);
        fmt::print("Network {} defined from {}\n\n", data->value("name", ""), file_);
        return kExitOk;
      });
  net_define->add_option("file", file_, "Network XML file")->required();
  json_flag(net_define);

  static constexpr Action kNetActions[] = {
      {"net-start", "Start (create) a defined network", "PUT", "/start",
       "Failed to start network {}", "Network {} started"},
      {"net-destroy", "Stop a network (remove its bridge, NAT rules and dnsmasq)", "PUT",
       "/destroy", "Failed to destroy network {}", "Network {} destroyed"},
      {"net-undefine", "Remove an inactive network's definition", "DELETE", "",
       "Failed to undefine network {}", "Network {} has been undefined"},
  };
  for (const Action& action : kNetActions) {
    CLI::App* sub = Add(app, action.name, action.help, [this, &action] {
      auto call = Open(common_.connect, fmt::format(fmt::runtime(action.failure), name_), name_);
      if (!call) return kExitError;
      auto data = call->Do(action.method, "/networks/" + name_ + action.path);
      if (!data) return kExitError;
      if (common_.json) return PrintJson(*data);
      fmt::print("{}\n\n", fmt::format(fmt::runtime(action.success), name_));
      return kExitOk;
    });
    sub->add_option("network", name_, "Network name")->required();
    json_flag(sub);
  }

  CLI::App* net_autostart =
      Add(app, "net-autostart", "Start a network whenever the daemon starts", [this] {
        auto call = Open(common_.connect, "", name_);
        if (!call) return kExitError;
        auto d = call->Do("PUT", "/networks/" + name_ + "/autostart",
                          json{{"enable", !disable_}}.dump());
        if (!d) return kExitError;
        if (common_.json) return PrintJson(*d);
        fmt::print("Network {} {}\n\n", name_,
                   disable_ ? "unmarked as autostarted" : "marked as autostarted");
        return kExitOk;
      });
  net_autostart->add_option("network", name_, "Network name")->required();
  net_autostart->add_flag("--disable", disable_, "Do not autostart it");
  json_flag(net_autostart);

  CLI::App* net_list =
      Add(app, "net-list", "List networks (active ones; --all for every one)", [this] {
        auto call = Open(common_.connect);
        if (!call) return kExitError;
        auto data = call->Do("GET", "/networks");
        if (!data) return kExitError;
        if (common_.json) return PrintJson(*data);
        fmt::print(" {:<16} {:<10} {:<8} {}\n", "Name", "State", "Forward", "Bridge");
        fmt::print("{}\n", std::string(48, '-'));
        for (const json& n : (*data)["networks"]) {
          bool active = n.value("active", false);
          if (!active && !all_) continue;
          fmt::print(" {:<16} {:<10} {:<8} {}\n", n.value("name", ""),
                     active ? "active" : "inactive", n.value("forward", ""), n.value("bridge", ""));
        }
        fmt::print("\n");
        return kExitOk;
      });
  net_list->add_flag("--all", all_, "Include inactive networks");
  json_flag(net_list);

  CLI::App* net_dumpxml =
      Add(app, "net-dumpxml", "Print a network's definition as libvirt XML", [this] {
        auto call = Open(common_.connect, "", name_);
        if (!call) return kExitError;
        auto data = call->Do("GET", "/networks/" + name_);
        if (!data) return kExitError;
        if (common_.json) return PrintJson(*data);
        fmt::print("{}", data->value("xml", ""));
        return kExitOk;
      });
  net_dumpxml->add_option("network", name_, "Network name")->required();
  json_flag(net_dumpxml);

  CLI::App* event = Add(app, "event", "Wait for domain lifecycle events", [this] {
    return Event(common_.connect, name_, loop_, timeout_s_, common_.json);
  });
  event->add_option("--domain", name_, "Only this domain's events");
  event->add_flag("--loop", loop_, "Keep waiting after the first event");
  event->add_option("--timeout", timeout_s_, "Stop after this many seconds");
  json_flag(event);
}

bool MgmtCommands::parsed() const {
  for (const Command& c : commands_) {
    if (c.app->parsed()) return true;
  }
  return false;
}

int MgmtCommands::Run() {
  for (const Command& c : commands_) {
    if (c.app->parsed()) return c.run();
  }
  return kExitUsage;
}

}  // namespace vireo::cli
