#include "api/cli/bench_api_server.hpp"

#include <fmt/format.h>
#include <netinet/in.h>
#include <rapidjson/document.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <thread>

#include "api/cli/bench_common.hpp"
#include "api/cli/child_process.hpp"
#include "api/cli/vm_api.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::cli {
namespace {

// Silence, not total time: a create under nested emulation takes tens of
// seconds, and the first one boots the image for the golden snapshot.
constexpr std::chrono::minutes kCallTimeout{15};
constexpr std::chrono::seconds kListenWait{60};

// A port the kernel just handed out on loopback: free unless someone else
// takes it in the instant between this close and serve's bind.
Result<uint16_t> free_loopback_port() {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return errno_error("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    return errno_error("bind 127.0.0.1:0");
  socklen_t len = sizeof a;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) return errno_error("getsockname");
  return ntohs(a.sin_port);
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

Status answer_ok(const Result<HttpResponse>& r, std::string_view what) {
  if (!r.ok()) return r.error().context(std::string(what));
  if (r->status != 200) return make_error("{}: {}", what, describe_api_error(r->status, r->body));
  return {};
}

// A string member of a 200 answer's JSON object.
Result<std::string> string_field(const Result<HttpResponse>& r, std::string_view what, const char* key) {
  FORKVM_CHECK(answer_ok(r, what));
  rapidjson::Document d;
  d.Parse(r->body.data(), r->body.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember(key) || !d[key].IsString())
    return make_error("{}: no {} in the answer: {}", what, key, r->body.substr(0, 300));
  return std::string(d[key].GetString(), d[key].GetStringLength());
}

}  // namespace

Result<std::unique_ptr<BenchServer>> BenchServer::open(const Args& args, uint64_t vm_mem_mib) {
  BenchServerOptions so;
  so.url = args.get("url");
  so.key = args.get("key");
  so.data_dir = args.get("data");
  so.run_dir = args.get("run-dir").value_or(so.run_dir);
  so.vm_mem_mib = vm_mem_mib;
  return open(so);
}

Result<std::unique_ptr<BenchServer>> BenchServer::open(const BenchServerOptions& o) {
  std::unique_ptr<BenchServer> s(new BenchServer());
  s->run_dir_ = o.run_dir;
  if (o.url) {
    if (!o.key) return make_error("--url wants --key too");
    s->url_text_ = *o.url;
    s->url_ = FORKVM_TRY(parse_server_url(*o.url));
    s->key_ = *o.key;
  } else {
    FORKVM_CHECK(s->start(o));
  }
  auto health = s->call("GET", "/healthz", std::nullopt);
  FORKVM_CHECK(answer_ok(health, "GET /healthz"));
  return s;
}

Status BenchServer::start(const BenchServerOptions& o) {
  if (o.data_dir) {
    data_dir_ = *o.data_dir;
    std::error_code ec;
    std::filesystem::create_directories(data_dir_, ec);
    if (ec) return make_error("create {}: {}", data_dir_, ec.message());
  } else {
    // /var/tmp, not /tmp: snapshots' memory files are VM-sized, and /tmp is
    // often (in tools/rig, always) a small tmpfs.
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/var/tmp") + "/forkvm-bench-api.XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) return errno_error("mkdtemp " + tmpl);
    data_dir_ = tmpl;
    remove_data_ = true;
  }
  auto key =
      FORKVM_TRY(run_timed({self_exe(), "keys", "create", "--data", data_dir_, "--label", "forkvm bench api"},
                           "", std::chrono::seconds(60)));
  if (key.status != 0) return make_error("forkvm keys create failed: {}", trimmed(key.output));
  key_ = trimmed(key.output);
  if (key_.find('\n') != std::string::npos) key_ = key_.substr(key_.rfind('\n') + 1);

  uint16_t port = FORKVM_TRY(free_loopback_port());
  url_text_ = fmt::format("http://127.0.0.1:{}", port);
  url_ = FORKVM_TRY(parse_server_url(url_text_));
  std::vector<std::string> argv = {self_exe(), "serve",  "--listen", fmt::format("127.0.0.1:{}", port),
                                   "--data",   data_dir_};
  if (o.vm_mem_mib > 0) argv.insert(argv.end(), {"--vm-mem", std::to_string(o.vm_mem_mib)});
  serve_ = FORKVM_TRY(engine::VmmProcess::spawn(argv, data_dir_ + "/serve.log"));
  auto deadline = std::chrono::steady_clock::now() + kListenWait;
  for (;;) {
    HttpCall health;
    health.method = "GET";
    health.target = "/healthz";
    health.timeout = std::chrono::seconds(5);
    auto r = http_call(url_, health);
    if (r.ok() && r->status == 200) return {};
    if (!serve_->running())
      return make_error("forkvm serve exited (status {}); see {}/serve.log",
                        serve_->exit_status().value_or("?"), data_dir_);
    if (std::chrono::steady_clock::now() > deadline)
      return make_error("forkvm serve did not answer /healthz within {} s", kListenWait.count());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

BenchServer::~BenchServer() {
  std::set<std::string> left;
  {
    std::lock_guard lock(mu_);
    left = vms_;
  }
  for (const auto& id : left) {
    if (auto s = delete_vm(id); !s.ok()) std::fprintf(stderr, "bench api: %s\n", s.error().message.c_str());
  }
  if (serve_) {
    serve_->signal(SIGTERM);
    if (!serve_->wait_for(std::chrono::seconds(30))) {
      serve_->signal(SIGKILL);
      serve_->wait_for(std::chrono::seconds(10));
    }
  }
  if (remove_data_) {
    std::error_code ec;
    std::filesystem::remove_all(data_dir_, ec);
  }
}

std::string BenchServer::describe() const {
  return serve_ ? fmt::format("forkvm serve started at {} (data {})", url_text_, data_dir_)
                : fmt::format("the server at {}", url_text_);
}

std::string BenchServer::agent_socket(const std::string& vm_id) const {
  return run_dir_ + "/" + vm_id + "/vsock.sock";
}

Result<HttpResponse> BenchServer::call(const std::string& method, const std::string& path,
                                       std::optional<std::string> body) const {
  return http_call(url_, {.method = method,
                          .target = url_.prefix + path,
                          .body = std::move(body),
                          .bearer = key_,
                          .timeout = kCallTimeout});
}

void BenchServer::track(const std::string& id, bool live) {
  std::lock_guard lock(mu_);
  if (live)
    vms_.insert(id);
  else
    vms_.erase(id);
}

Result<std::string> BenchServer::create_vm(const std::string& body) {
  auto r = call("POST", "/v1/vms", body);
  std::string id = FORKVM_TRY(string_field(r, "POST /v1/vms", "id"));
  track(id, true);
  return id;
}

Result<std::string> BenchServer::create_snapshot(const std::string& body) {
  return string_field(call("POST", "/v1/vms/snapshots", body), "POST /v1/vms/snapshots", "snapshotId");
}

Status BenchServer::delete_snapshot(const std::string& snapshot_id) {
  auto r = call("DELETE", "/v1/vms/snapshots/" + percent_encode_segment(snapshot_id), std::nullopt);
  return answer_ok(r, "DELETE /v1/vms/snapshots/" + snapshot_id);
}

Status BenchServer::exec(const std::string& vm_id, const std::string& command) {
  std::string body = fmt::format(R"({{"command":"{}"}})", command);  // plain words only: no escaping needed
  auto r = call("POST", "/v1/vms/" + percent_encode_segment(vm_id) + "/exec-await", body);
  FORKVM_CHECK(answer_ok(r, "exec-await"));
  auto out = FORKVM_TRY(parse_exec_output(r->body));
  if (out.status_code.value_or(-1) != 0)
    return make_error("exec-await '{}' exited {}: {}", command, out.status_code.value_or(-1),
                      out.stderr_text);
  return {};
}

Result<std::vector<std::string>> BenchServer::fork(const std::string& vm_id, uint64_t count) {
  auto r = call("POST", "/v1/vms/" + percent_encode_segment(vm_id) + "/fork",
                fmt::format(R"({{"count":{}}})", count));
  FORKVM_CHECK(answer_ok(r, "fork"));
  rapidjson::Document d;
  d.Parse(r->body.data(), r->body.size());
  if (d.HasParseError() || !d.IsObject() || !d.HasMember("forks") || !d["forks"].IsArray())
    return make_error("fork: no forks in the answer: {}", r->body.substr(0, 300));
  std::vector<std::string> ids;
  for (const auto& f : d["forks"].GetArray()) {
    if (f.IsObject() && f.HasMember("id") && f["id"].IsString()) ids.emplace_back(f["id"].GetString());
  }
  for (const auto& id : ids) track(id, true);
  if (ids.size() != count) return make_error("fork: asked for {} children, got {}", count, ids.size());
  return ids;
}

Status BenchServer::delete_vm(const std::string& vm_id) {
  auto r = call("DELETE", "/v1/vms/" + percent_encode_segment(vm_id), std::nullopt);
  FORKVM_CHECK(answer_ok(r, "DELETE /v1/vms/" + vm_id));
  track(vm_id, false);
  return {};
}

}  // namespace forkvm::cli
