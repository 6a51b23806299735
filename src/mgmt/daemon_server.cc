#include "mgmt/daemon_server.h"

#include <httplib.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "base/log.h"

namespace vireo::mgmt {
namespace {

using nlohmann::json;
constexpr const char* kPrefix = "/api/v1";

void Answer(const HttpResponse& r, httplib::Response& out) {
  out.status = r.status;
  // Error messages quote user input, which need not be UTF-8: replace, never throw.
  out.set_content(r.body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

int QueryInt(const httplib::Request& req, const char* key, int fallback) {
  if (!req.has_param(key)) return fallback;
  try {
    return std::stoi(req.get_param_value(key));
  } catch (const std::exception&) {
    return fallback;
  }
}

json BodyJson(const httplib::Request& req, HttpResponse* error) {
  json body = req.body.empty() ? json::object() : json::parse(req.body, nullptr, false);
  if (body.is_discarded() || !body.is_object()) {
    *error = api::ErrorResponse(400, "request body: expected a JSON object");
  }
  return body;
}

void AddRoutes(httplib::Server& server, Daemon& daemon) {
  const std::string p = kPrefix;
  server.Get(p + "/host", [&](const httplib::Request&, httplib::Response& res) {
    Answer(daemon.HostInfo(), res);
  });
  server.Get(p + "/domains", [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.List(req.has_param("all") && req.get_param_value("all") != "0"), res);
  });
  server.Post(p + "/domains", [&](const httplib::Request& req, httplib::Response& res) {
    HttpResponse error;
    json body = BodyJson(req, &error);
    if (error.status != 200) return Answer(error, res);
    if (!body.contains("definition") || !body["definition"].is_string()) {
      return Answer(
          api::ErrorResponse(400, "request body: needs \"definition\": the XML or JSON text"), res);
    }
    bool strict = body.value("strict", false);
    Answer(daemon.Define(body["definition"].get<std::string>(), strict), res);
  });
  const std::string domain = p + R"(/domains/([^/]+))";
  server.Get(domain, [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.Info(req.matches[1]), res);
  });
  server.Delete(domain, [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.Undefine(req.matches[1]), res);
  });
  server.Get(domain + "/definition", [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.Definition(req.matches[1],
                             req.has_param("format") ? req.get_param_value("format") : "xml"),
           res);
  });
  server.Get(domain + "/stats", [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.Stats(req.matches[1]), res);
  });
  server.Put(
      domain + "/(start|shutdown|destroy|reboot|suspend|resume)",
      [&](const httplib::Request& req, httplib::Response& res) {
        const std::string name = req.matches[1], action = req.matches[2];
        if (action == "start") {
          // {"incoming": "tcp:HOST:PORT"}: wait there for a live migration instead.
          HttpResponse error;
          json body = BodyJson(req, &error);
          if (error.status != 200) return Answer(error, res);
          if (!body.contains("incoming")) return Answer(daemon.Start(name), res);
          if (!body["incoming"].is_string()) {
            return Answer(
                api::ErrorResponse(400, "request body: \"incoming\" must be \"tcp:HOST:PORT\""),
                res);
          }
          return Answer(daemon.StartIncoming(name, body["incoming"].get<std::string>()), res);
        }
        if (action == "shutdown") return Answer(daemon.Shutdown(name), res);
        if (action == "destroy") return Answer(daemon.Destroy(name), res);
        if (action == "reboot") return Answer(daemon.Reboot(name), res);
        if (action == "suspend") return Answer(daemon.Suspend(name), res);
        Answer(daemon.Resume(name), res);
      });
  server.Put(domain + "/autostart", [&](const httplib::Request& req, httplib::Response& res) {
    HttpResponse error;
    json body = BodyJson(req, &error);
    if (error.status != 200) return Answer(error, res);
    if (!body.contains("enable") || !body["enable"].is_boolean()) {
      return Answer(api::ErrorResponse(400, "request body: needs \"enable\": true or false"), res);
    }
    Answer(daemon.SetAutostart(req.matches[1], body["enable"].get<bool>()), res);
  });
  server.Get(domain + "/console", [&](const httplib::Request& req, httplib::Response& res) {
    std::optional<uint64_t> offset;
    if (req.has_param("offset"))
      offset = std::strtoull(req.get_param_value("offset").c_str(), nullptr, 10);
    uint64_t next = 0;
    int status = 200;
    std::string state;
    auto data = daemon.ConsoleRead(req.matches[1], offset, QueryInt(req, "wait_ms", 0), &next,
                                   &state, &status);
    if (!data) return Answer(api::ErrorResponse(status, data.error().message), res);
    res.set_header("X-Console-Offset", std::to_string(next));
    res.set_header("X-Domain-State", state);
    res.set_content(*data, "application/octet-stream");
  });
  server.Post(domain + "/console", [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.ConsoleWrite(req.matches[1], req.body), res);
  });
  server.Get(domain + "/vcpus", [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.VcpuInfo(req.matches[1]), res);
  });
  server.Put(domain + R"(/vcpus/(\d{1,9})/pin)", [&](const httplib::Request& req,
                                                     httplib::Response& res) {
    HttpResponse error;
    json body = BodyJson(req, &error);
    if (error.status != 200) return Answer(error, res);
    if (!body.contains("cpuset") || !body["cpuset"].is_string()) {
      return Answer(
          api::ErrorResponse(400, "request body: needs \"cpuset\": host CPUs, e.g. \"0-2,4\""),
          res);
    }
    if (body.contains("config") && !body["config"].is_boolean()) {
      return Answer(api::ErrorResponse(400, "request body: \"config\" must be true or false"), res);
    }
    Answer(daemon.VcpuPin(req.matches[1], static_cast<uint32_t>(std::stoul(req.matches[2])),
                          body["cpuset"].get<std::string>(), body.value("config", false)),
           res);
  });
  server.Put(domain + "/memory", [&](const httplib::Request& req, httplib::Response& res) {
    HttpResponse error;
    json body = BodyJson(req, &error);
    if (error.status != 200) return Answer(error, res);
    if (!body.contains("size_bytes") || !body["size_bytes"].is_number_unsigned()) {
      return Answer(
          api::ErrorResponse(400, "request body: needs \"size_bytes\": the guest's memory"), res);
    }
    for (const char* flag : {"live", "config"}) {
      if (body.contains(flag) && !body[flag].is_boolean()) {
        return Answer(api::ErrorResponse(
                          400, fmt::format("request body: \"{}\" must be true or false", flag)),
                      res);
      }
    }
    Answer(daemon.SetMemory(req.matches[1], body["size_bytes"].get<uint64_t>(),
                            body.value("live", false), body.value("config", false)),
           res);
  });
  server.Put(domain + "/migrate", [&](const httplib::Request& req, httplib::Response& res) {
    HttpResponse error;
    json body = BodyJson(req, &error);
    if (error.status != 200) return Answer(error, res);
    if (!body.contains("uri") || !body["uri"].is_string()) {
      return Answer(api::ErrorResponse(400, "request body: needs \"uri\": \"tcp:HOST:PORT\""), res);
    }
    uint64_t numbers[2] = {0, 0};
    const char* keys[2] = {"max_downtime_ms", "bandwidth_mbps"};
    for (int i = 0; i < 2; ++i) {
      if (!body.contains(keys[i])) continue;
      if (!body[keys[i]].is_number_unsigned()) {
        return Answer(
            api::ErrorResponse(
                400, fmt::format("request body: \"{}\" must be a non-negative integer", keys[i])),
            res);
      }
      numbers[i] = body[keys[i]].get<uint64_t>();
    }
    Answer(daemon.Migrate(req.matches[1], body["uri"].get<std::string>(), numbers[0], numbers[1]),
           res);
  });
  server.Get(domain + "/migrate", [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.MigrationStatus(req.matches[1]), res);
  });
  server.Get(domain + "/snapshots", [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.SnapshotList(req.matches[1]), res);
  });
  server.Post(domain + "/snapshots", [&](const httplib::Request& req, httplib::Response& res) {
    HttpResponse error;
    json body = BodyJson(req, &error);
    if (error.status != 200) return Answer(error, res);
    if (!body.contains("name") || !body["name"].is_string()) {
      return Answer(api::ErrorResponse(400, "request body: needs \"name\": the snapshot's name"),
                    res);
    }
    Answer(daemon.SnapshotCreate(req.matches[1], body["name"].get<std::string>()), res);
  });
  server.Put(domain + "/snapshots/([^/]+)/revert",
             [&](const httplib::Request& req, httplib::Response& res) {
               Answer(daemon.SnapshotRevert(req.matches[1], req.matches[2]), res);
             });
  server.Delete(domain + "/snapshots/([^/]+)",
                [&](const httplib::Request& req, httplib::Response& res) {
                  Answer(daemon.SnapshotDelete(req.matches[1], req.matches[2]), res);
                });
  server.Get(p + "/networks", [&](const httplib::Request&, httplib::Response& res) {
    Answer(daemon.NetList(), res);
  });
  server.Post(p + "/networks", [&](const httplib::Request& req, httplib::Response& res) {
    HttpResponse error;
    json body = BodyJson(req, &error);
    if (error.status != 200) return Answer(error, res);
    if (!body.contains("definition") || !body["definition"].is_string()) {
      return Answer(api::ErrorResponse(400, "request body: needs \"definition\": the network XML"),
                    res);
    }
    Answer(daemon.NetDefine(body["definition"].get<std::string>()), res);
  });
  const std::string network = p + R"(/networks/([^/]+))";
  server.Get(network, [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.NetInfo(req.matches[1]), res);
  });
  server.Delete(network, [&](const httplib::Request& req, httplib::Response& res) {
    Answer(daemon.NetUndefine(req.matches[1]), res);
  });
  server.Put(network + "/autostart", [&](const httplib::Request& req, httplib::Response& res) {
    HttpResponse error;
    json body = BodyJson(req, &error);
    if (error.status != 200) return Answer(error, res);
    if (!body.contains("enable") || !body["enable"].is_boolean()) {
      return Answer(api::ErrorResponse(400, "request body: needs \"enable\": true or false"), res);
    }
    Answer(daemon.NetAutostart(req.matches[1], body["enable"].get<bool>()), res);
  });
  server.Put(
      network + "/(start|destroy)", [&](const httplib::Request& req, httplib::Response& res) {
        const std::string name = req.matches[1];
        Answer(req.matches[2] == "start" ? daemon.NetStart(name) : daemon.NetDestroy(name), res);
      });
  server.Get(p + "/events", [&](const httplib::Request& req, httplib::Response& res) {
    uint64_t since = 0;
    if (req.has_param("since"))
      since = std::strtoull(req.get_param_value("since").c_str(), nullptr, 10);
    Answer(daemon.Events(since, QueryInt(req, "timeout_ms", 0)), res);
  });
  server.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    Answer(api::ErrorResponse(res.status,
                              res.status == 404
                                  ? fmt::format("no such resource: {} {}", req.method, req.path)
                                  : fmt::format("HTTP error {}", res.status)),
           res);
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
        Answer(api::ErrorResponse(500, "internal error"), res);
      });
  server.set_payload_max_length(4 << 20);
  server.set_keep_alive_timeout(1);
  // Long polls (events, console) hold a worker each; 20 VMs starting at once hold more.
  server.new_task_queue = [] { return new httplib::ThreadPool(64); };
}

}  // namespace

Status Serve(Daemon& daemon, const ServeOptions& options) {
  if (options.socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return Fail("--socket {}: longer than a Unix socket path may be", options.socket_path);
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGPIPE);
  // Blocked before any server thread starts, so only sigwait below takes them.
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  httplib::Server local;
  AddRoutes(local, daemon);
  local.set_address_family(AF_UNIX);
  ::unlink(options.socket_path.c_str());
  if (!local.bind_to_port(options.socket_path, 80)) {
    return Fail("--socket {}: cannot listen: {}", options.socket_path, std::strerror(errno));
  }
  ::chmod(options.socket_path.c_str(), 0600);
  std::thread local_thread([&] { local.listen_after_bind(); });

  std::unique_ptr<httplib::SSLServer> remote;
  std::thread remote_thread;
  if (!options.listen.empty()) {
    size_t colon = options.listen.rfind(':');
    if (colon == std::string::npos || options.tls_cert.empty() || options.tls_key.empty() ||
        options.token.empty()) {
      local.stop();
      local_thread.join();
      return Fail("--listen HOST:PORT needs --tls-cert, --tls-key and --token-file");
    }
    remote =
        std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
    if (!remote->is_valid()) {
      local.stop();
      local_thread.join();
      return Fail("--tls-cert/--tls-key: cannot load the certificate or key");
    }
    AddRoutes(*remote, daemon);
    const std::string expected = "Bearer " + options.token;
    remote->set_pre_routing_handler([expected](const httplib::Request& req,
                                               httplib::Response& res) {
      if (req.get_header_value("Authorization") == expected)
        return httplib::Server::HandlerResponse::Unhandled;
      res.status = 401;
      Answer(api::ErrorResponse(401, "missing or wrong token (Authorization: Bearer TOKEN)"), res);
      return httplib::Server::HandlerResponse::Handled;
    });
    int port = std::atoi(options.listen.substr(colon + 1).c_str());
    if (!remote->bind_to_port(options.listen.substr(0, colon), port)) {
      local.stop();
      local_thread.join();
      return Fail("--listen {}: cannot listen: {}", options.listen, std::strerror(errno));
    }
    remote_thread = std::thread([&] { remote->listen_after_bind(); });
  }
  while (!local.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  Log(LogLevel::kInfo, "serving on {}{}", options.socket_path,
      options.listen.empty() ? "" : " and https://" + options.listen);
  fmt::print(stderr, "vireo daemon: ready on {}\n", options.socket_path);

  int sig = 0;
  do {
    sigwait(&stop, &sig);
  } while (sig == SIGPIPE);
  Log(LogLevel::kInfo, "signal {}: stopping; VMs keep running", sig);
  daemon.events().Close();  // long polls answer now
  local.stop();
  if (remote) remote->stop();
  local_thread.join();
  if (remote_thread.joinable()) remote_thread.join();
  ::unlink(options.socket_path.c_str());
  return {};
}

}  // namespace vireo::mgmt
