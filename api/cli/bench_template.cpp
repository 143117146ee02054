// forkvm bench template: what the template cache buys. One template (files
// and a systemd service) is built once into a snapshot; then VMs are created
// from it (a restore of the cached snapshot) beside VMs created with the same
// fields at the top level, which every create applies again inside the new
// guest: the baseline.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "api/cli/args.hpp"
#include "api/cli/bench_api_server.hpp"
#include "api/cli/bench_common.hpp"
#include "api/models/ids.hpp"
#include "vmm/elapsed.hpp"

namespace forkvm::cli {
namespace {

constexpr const char* kTemplateUsage = R"(usage: forkvm bench template [options]

  --runs N            creates of each kind measured to their first exec (default 5)
  --files N           files in the template, 4 KiB each (default 20)
  --vm-mem MiB        memory of each VM, for a server started here (default: serve's)
  --url URL --key KEY a running server instead of starting one
  --run-dir DIR       that server's socket directory (default /run/forkvm)
  --data DIR          data directory of the started server, kept afterwards
  --json              print one JSON line

Measures: the first POST /v1/vms/snapshots of a new template (a builder VM
restored, the fields applied, snapshotted, deleted), the same POST again (the
cache), create from the template to its first exec, and create with the same
fields at the top level to its first exec (applied at every create). The
creates alternate, so both see the same load. Everything made is deleted.
)";

using Clock = std::chrono::steady_clock;

// The layer's fields as JSON members (no braces), unique to this run so the
// first build is a real one.
std::string layer_fields(uint64_t files, const std::string& tag) {
  std::string body = fmt::format(R"("discriminator":"{}","additionalFiles":{{)", tag);
  const std::string content(4096, 'x');
  for (uint64_t i = 0; i < files; i++)
    body += fmt::format(R"({}"/opt/bench/{}/f{}":{{"content":"{}"}})", i ? "," : "", tag, i, content);
  body += R"(},"systemd":{"services":[{"name":"bench-ticker","mode":"service",)"
          R"("exec":["/bin/sh -c 'while true; do sleep 1; done'"]}]})";
  return body;
}

}  // namespace

int bench_template(const std::vector<std::string>& argv) {
  auto args =
      Args::parse(argv, {"runs", "files", "vm-mem", "url", "key", "run-dir", "data"}, {"json", "help"});
  if (!args) return usage_error("bench template", args.error());
  if (args->has("help")) {
    std::fputs(kTemplateUsage, stdout);
    return 0;
  }
  auto runs = args->get_uint("runs", 5, 1, 1000);
  auto files = args->get_uint("files", 20, 0, 200);
  auto mem = args->get_uint("vm-mem", 0, 0, 1 << 20);
  for (const auto* r : {&runs, &files, &mem})
    if (!*r) return usage_error("bench template", r->error());

  auto server = BenchServer::open(*args, *mem);
  if (!server) return usage_error("bench template", server.error());
  auto& s = **server;
  std::fprintf(stderr, "bench template: %s\n", s.describe().c_str());
  auto fail = [](const Error& e) {
    std::fprintf(stderr, "bench template: %s\n", e.message.c_str());
    return 1;  // ~BenchServer deletes the VMs made so far and stops the server
  };

  // A plain create first: the golden snapshot the build's VM starts from.
  auto warm = s.create_vm();
  if (!warm) return fail(warm.error());
  if (auto d = s.delete_vm(*warm); !d) return fail(d.error());

  const std::string fields =
      layer_fields(*files, "t" + api::random_string(10, "abcdefghijklmnopqrstuvwxyz0123456789"));
  const std::string tmpl = fmt::format(R"({{"template":{{{}}}}})", fields);
  auto t0 = Clock::now();
  auto snapshot = s.create_snapshot(tmpl);
  if (!snapshot) return fail(snapshot.error());
  const double build_ms = ms_since(t0);
  std::fprintf(stderr, "bench template: built %s in %.1f ms\n", snapshot->c_str(), build_ms);

  Samples cached_ms, from_template_ms, direct_ms;
  for (uint64_t i = 0; i < *runs; i++) {
    t0 = Clock::now();
    auto again = s.create_snapshot(tmpl);
    if (!again) return fail(again.error());
    if (*again != *snapshot) return fail(make_error("the cache answered {}, not {}", *again, *snapshot));
    cached_ms.add(ms_since(t0));
    for (const auto& [body, samples] :
         {std::pair{tmpl, &from_template_ms}, std::pair{"{" + fields + "}", &direct_ms}}) {
      t0 = Clock::now();
      auto id = s.create_vm(body);
      if (!id) return fail(id.error());
      if (auto e = s.exec(*id, "systemctl is-active -q bench-ticker"); !e) return fail(e.error());
      samples->add(ms_since(t0));
      if (auto d = s.delete_vm(*id); !d) return fail(d.error());
    }
  }
  if (auto d = s.delete_snapshot(*snapshot); !d) return fail(d.error());

  const double ratio = direct_ms.median() / from_template_ms.median();
  if (args->has("json")) {
    std::puts(fmt::format(R"({{"bench":"template","files":{},"build_ms":{:.3f},"cached_ms":{},)"
                          R"("create_from_template_ms":{},"create_with_fields_ms":{},"ratio":{:.2f}}})",
                          *files, build_ms, cached_ms.json(), from_template_ms.json(), direct_ms.json(),
                          ratio)
                  .c_str());
  } else {
    std::printf("template build (first POST /v1/vms/snapshots): %.1f ms\n", build_ms);
    std::printf("same template again (the cache):               %s\n", cached_ms.text().c_str());
    std::printf("create from the template -> first exec:        %s\n", from_template_ms.text().c_str());
    std::printf("create with the fields -> first exec:          %s\n", direct_ms.text().c_str());
    std::printf("with the fields / from the template (medians): %.2fx\n", ratio);
  }
  return 0;
}

}  // namespace forkvm::cli
