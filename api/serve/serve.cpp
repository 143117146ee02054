#include "api/serve/serve.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "api/auth/auth.hpp"
#include "api/routes/api.hpp"
#include "api/serve/idle_monitor.hpp"
#include "api/serve/unavailable_engine.hpp"
#include "api/serve/vm_recovery.hpp"
#include "api/store/store.hpp"
#include "vmm/log.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::api {

extern const std::string_view kOpenApiJson;  // generated from openapi.json

namespace {

constexpr const char* kDefaultAccount = "default";

Result<std::unique_ptr<Store>> open_store(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) return make_error("create data directory {}: {}", data_dir, ec.message());
  // The database holds key hashes and VM configuration: owner-only.
  ::chmod(data_dir.c_str(), 0700);
  return open_sqlite_store(data_dir + "/forkvm.db");
}

// Writes the first key where scripts can find it, readable by the owner only.
Status write_key_file(const std::string& path, const std::string& key) {
  std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return errno_error("open " + tmp);
  std::string line = key + "\n";
  if (::write(fd.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    return errno_error("write " + tmp);
  if (::fsync(fd.get()) != 0) return errno_error("fsync " + tmp);
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return errno_error("rename " + tmp);
  return {};
}

// SIGINT/SIGTERM are blocked in every thread and taken by one thread with
// sigwait(), which asks the server to stop (a thread-safe post). This keeps
// shutdown independent of how the I/O backend delivers signals; once, after
// heavy load, a SIGTERM went unanswered with Asio's signal_set on io_uring
// and could not be reproduced. A second signal exits at once.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);  // before any thread starts, so all inherit it
  return set;
}

void start_signal_thread(sigset_t set, HttpServer& server) {
  std::thread([set, &server] {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return;
    log(LogLevel::info, "serve: signal {}; shutting down gracefully", sig);
    server.stop();
    if (sigwait(&set, &sig) != 0) return;
    log(LogLevel::warn, "serve: second signal {}; exiting now", sig);
    std::_Exit(1);
  }).detach();
}

}  // namespace

Status parse_listen(std::string_view text, HttpServerOptions& http) {
  size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return make_error("--listen wants ADDR:PORT, got '{}'", text);
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc() || end != port.data() + port.size() || value > 65535)
    return make_error("--listen: bad port '{}'", port);
  http.host = host.empty() ? "0.0.0.0" : std::string(host);
  http.port = static_cast<uint16_t>(value);
  return {};
}

int run_serve(const ServeOptions& options) {
  sigset_t stop_signals = block_stop_signals();
  auto store = open_store(options.data_dir);
  if (!store.ok()) {
    log(LogLevel::error, "serve: {}", store.error().message);
    return 1;
  }
  auto keys = (*store)->count_api_keys();
  if (!keys.ok()) {
    log(LogLevel::error, "serve: {}", keys.error().message);
    return 1;
  }
  if (*keys == 0) {
    auto issued = issue_api_key(**store, kDefaultAccount, "first key, made by forkvm serve");
    if (!issued.ok()) {
      log(LogLevel::error, "serve: creating the first API key: {}", issued.error().message);
      return 1;
    }
    std::string path = options.data_dir + "/api-key";
    auto written = write_key_file(path, issued->key);
    // stderr, not the log: this is the one time the key is shown.
    std::fprintf(stderr, "forkvm serve: no API keys yet; created one for account '%s':\n  %s\n",
                 kDefaultAccount, issued->key.c_str());
    if (written.ok())
      std::fprintf(stderr, "  (also written to %s, mode 0600)\n", path.c_str());
    else
      log(LogLevel::warn, "serve: could not save the key: {}", written.error().message);
  }
  // Without a guest image or KVM there is still an API (keys, lists, the
  // store); every VM operation then answers 501 and says why.
  engine::LocalEngineOptions engine_options = options.engine;
  engine_options.data_dir = options.data_dir;
  std::string engine_note = "local KVM engine";
  auto made = engine::make_local_engine(engine_options);
  std::unique_ptr<VmEngine> engine;
  if (made.ok()) {
    engine = std::move(*made);
  } else {
    engine_note = "unavailable (" + made.error().message + "); VM operations answer 501";
    engine = make_unavailable_engine(made.error().message);
  }
  // VMMs outlive the server: take back those the store has as running
  // before anyone can call, and hear about those that end on their own.
  // Only the real engine can tell: without one, rows stay as they are.
  if (made.ok()) {
    engine->set_exit_listener(store_exit_listener(**store));
    recover_vms(**store, *engine);
  }
  // A template build runs inside one request: any still open ended with the
  // server that ran it. (Its builder VM, if any, was recovered above.)
  if (auto cut = (*store)->fail_unfinished_builds("the server stopped during the build"); !cut.ok())
    log(LogLevel::warn, "serve: closing unfinished builds: {}", cut.error().message);
  else if (*cut > 0)
    log(LogLevel::info, "serve: {} build(s) cut short by the last stop are now failed", *cut);
  // idleTimeoutSeconds; destroyed (joined) before the engine and the store.
  std::optional<IdleMonitor> idle;
  if (made.ok()) idle.emplace(**store, *engine);
  Api api(**store, *engine, kOpenApiJson);
  HttpServerOptions http = options.http;
  http.handle_signals = false;  // the sigwait thread below does it
  auto server = HttpServer::create(http, api);
  if (!server.ok()) {
    log(LogLevel::error, "serve: {}", server.error().message);
    return 1;
  }
  log(LogLevel::info,
      "serve: listening on {}:{} (HTTP on Asio/{}), data in {}; VM engine: {}", options.http.host,
      (*server)->port(), (*server)->backend(), options.data_dir, engine_note);
  start_signal_thread(stop_signals, **server);
  bool clean = (*server)->run();
  log(LogLevel::info, "serve: stopped");
  if (!clean) {
    // A handler is stuck in the engine; the process must still exit.
    std::fflush(nullptr);
    std::_Exit(1);
  }
  return 0;
}

int run_keys_create(const std::string& data_dir, const std::string& account, const std::string& label) {
  auto store = open_store(data_dir);
  if (!store.ok()) {
    std::fprintf(stderr, "forkvm keys: %s\n", store.error().message.c_str());
    return 1;
  }
  auto issued = issue_api_key(**store, account, label);
  if (!issued.ok()) {
    std::fprintf(stderr, "forkvm keys: %s\n", issued.error().message.c_str());
    return 1;
  }
  std::printf("%s\n", issued->key.c_str());
  return 0;
}

}  // namespace forkvm::api
