// `forkvm vm ...`: a terminal client for the Freestyle VMs API, thin over
// HTTP. Planning (arguments, paths, bodies) is in vm_api.cpp; this file
// sends the calls, moves file bytes and prints.
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "api/cli/commands.hpp"
#include "api/cli/http_client.hpp"
#include "api/cli/vm_api.hpp"

namespace forkvm::cli {

namespace {

constexpr int kFailed = 1;

// Everything that did not come back 2xx, or came back unreadable, exits 1.
struct Client {
  ClientConfig config;

  // The response body of a 2xx answer; prints the error and returns nullopt otherwise.
  std::optional<std::string> call(const ApiRequest& r) const {
    HttpCall c{r.method, config.url.prefix + r.path, r.body, config.key,
               std::chrono::milliseconds(r.timeout_ms)};
    auto resp = http_call(config.url, c);
    if (!resp.ok()) {
      std::fprintf(stderr, "forkvm vm: %s\n", resp.error().message.c_str());
      return std::nullopt;
    }
    if (resp->status < 200 || resp->status >= 300) {
      std::fprintf(stderr, "forkvm vm: %s\n", describe_api_error(resp->status, resp->body).c_str());
      return std::nullopt;
    }
    return std::move(resp->body);
  }
};

int complain(const Error& e) {
  std::fprintf(stderr, "forkvm vm: %s\n", e.message.c_str());
  return kFailed;
}

void write_all(FILE* f, std::string_view bytes) { std::fwrite(bytes.data(), 1, bytes.size(), f); }

Result<std::string> read_local(const std::string& path) {
  FILE* f = path == "-" ? stdin : std::fopen(path.c_str(), "rb");
  if (f == nullptr) return errno_error(fmt::format("open {}", path));
  std::string data;
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) data.append(buf, n);
  bool bad = std::ferror(f) != 0;
  if (f != stdin) std::fclose(f);
  if (bad) return make_error("read {}: I/O error", path);
  return data;
}

Status write_local(std::string path, const std::string& guest_path, std::string_view bytes) {
  if (path == "-") {
    write_all(stdout, bytes);
    return {};
  }
  // Into an existing directory, under the guest file's name, as cp does.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    std::string base = guest_path.substr(guest_path.find_last_of('/') + 1);
    if (base.empty()) return make_error("{} is a directory and the guest path names no file", path);
    path += "/" + base;
  }
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return errno_error(fmt::format("create {}", path));
  write_all(f, bytes);
  if (std::fclose(f) != 0) return errno_error(fmt::format("write {}", path));
  return {};
}

int run_exec(const Client& client, const VmPlan& plan) {
  auto body = client.call(plan.request);
  if (!body) return kFailed;
  auto out = parse_exec_output(*body);
  if (!out.ok()) return complain(out.error());
  write_all(stdout, out->stdout_text);
  std::fflush(stdout);
  write_all(stderr, out->stderr_text);
  if (!out->status_code) {
    std::fputs("forkvm vm: the command ended without an exit status\n", stderr);
    return kFailed;
  }
  int64_t code = *out->status_code;
  return code >= 0 && code <= 255 ? static_cast<int>(code) : kFailed;
}

int run_logs(const Client& client, const VmPlan& plan) {
  auto body = client.call(plan.request);
  if (!body) return kFailed;
  auto print_lines = [](const std::string& text) {
    auto lines = parse_log_lines(text);
    if (!lines.ok()) return complain(lines.error());
    for (const auto& l : *lines) std::printf("%s\n", l.c_str());
    return 0;
  };
  if (plan.service) return print_lines(*body);
  auto names = parse_terminal_names(*body);
  if (!names.ok()) return complain(names.error());
  int status = 0;
  for (const auto& name : *names) {
    if (names->size() > 1) std::printf("==> %s <==\n", name.c_str());
    auto logs =
        client.call({"GET", terminal_logs_path(plan.vm_id, name), std::nullopt, plan.request.timeout_ms});
    if (!logs || print_lines(*logs) != 0) status = kFailed;
  }
  return status;
}

}  // namespace

int vm_command(const std::vector<std::string>& argv) {
  auto plan = plan_vm_command(argv);
  if (!plan.ok()) {
    std::fprintf(stderr, "forkvm vm: %s\n%s", plan.error().message.c_str(), kVmUsage);
    return kUsageError;
  }
  if (plan->op == VmOp::help) {
    bool asked = !argv.empty();
    std::fputs(kVmUsage, asked ? stdout : stderr);
    return asked ? 0 : kUsageError;
  }
  auto config = resolve_client_config(plan->url, plan->key, std::getenv("FREESTYLE_API_URL"),
                                      std::getenv("FREESTYLE_API_KEY"), "./data/api-key");
  if (!config.ok()) {
    std::fprintf(stderr, "forkvm vm: %s\n", config.error().message.c_str());
    return kUsageError;
  }
  Client client{std::move(*config)};
  ApiRequest request = plan->request;

  switch (plan->op) {
    case VmOp::exec:
      return run_exec(client, *plan);
    case VmOp::logs:
      return run_logs(client, *plan);
    case VmOp::cp_in: {
      auto bytes = read_local(plan->local_path);
      if (!bytes.ok()) return complain(bytes.error());
      request.body = file_put_body(*bytes);
      return client.call(request) ? 0 : kFailed;
    }
    case VmOp::cp_out: {
      auto body = client.call(request);
      if (!body) return kFailed;
      auto bytes = parse_file_content(*body);
      if (!bytes.ok()) return complain(bytes.error());
      auto written = write_local(plan->local_path, plan->guest_path, *bytes);
      return written.ok() ? 0 : complain(written.error());
    }
    case VmOp::list: {
      auto body = client.call(request);
      if (!body) return kFailed;
      auto table = format_vm_table(*body);
      if (!table.ok()) return complain(table.error());
      std::fputs(table->c_str(), stdout);
      return 0;
    }
    default: {
      auto body = client.call(request);
      if (!body) return kFailed;
      std::fputs(pretty_json(*body).c_str(), stdout);
      return 0;
    }
  }
}

}  // namespace forkvm::cli
