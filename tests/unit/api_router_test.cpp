// Routing: every path of the OpenAPI document resolves to its handler, the
// most specific pattern wins, methods give 405, and percent-decoding is exact
// (encoded slashes stay inside the file-path segment).
#include <doctest/doctest.h>
#include <rapidjson/document.h>

#include <set>

#include "api/routes/api.hpp"
#include "api/routes/percent.hpp"
#include "api/routes/router.hpp"

using namespace forkvm::api;

namespace forkvm::api {
extern const std::string_view kOpenApiJson;
}

namespace {

std::vector<RoutePattern> table_patterns() {
  std::vector<RoutePattern> out;
  for (const auto& r : api_routes()) out.push_back({r.method, r.pattern});
  return out;
}

RouteHandler handler_for(const char* method, const char* path,
                         std::map<std::string, std::string>* params = nullptr) {
  static Router router(table_patterns());
  RouteMatch m = router.match(method, path);
  if (m.kind != RouteMatch::Kind::found) return nullptr;
  if (params) *params = m.params;
  return api_routes()[m.index].handler;
}

// A function (not an expression) so doctest does not try to print pointers.
bool routes_to(const char* method, const char* path, RouteHandler h,
               std::map<std::string, std::string>* params = nullptr) {
  return handler_for(method, path, params) == h;
}

}  // namespace

TEST_CASE("every spec operation resolves to its handler") {
  constexpr const char* vm = "abcdefghij0123456789";
  struct Case {
    const char* method;
    std::string path;
    RouteHandler handler;
  };
  const std::string v = std::string("/v1/vms/") + vm;
  const Case cases[] = {
      {"GET", "/v1/vms", list_vms},
      {"POST", "/v1/vms", create_vm},
      {"GET", "/v1/vms/builds/bld-abcdefghij0123456789", get_build},
      {"GET", "/v1/vms/builds/bld-abcdefghij0123456789/phases", list_build_phases},
      {"GET", "/v1/vms/snapshots", list_snapshots},
      {"POST", "/v1/vms/snapshots", create_snapshot},
      {"GET", "/v1/vms/snapshots/sc-abcdefghij0123456789", get_snapshot},
      {"DELETE", "/v1/vms/snapshots/sc-abcdefghij0123456789", delete_snapshot},
      {"PATCH", "/v1/vms/snapshots/sc-abcdefghij0123456789", update_snapshot},
      {"POST", v + "/resize", resize_vm},
      {"GET", v, get_vm},
      {"DELETE", v, delete_vm},
      {"POST", v + "/await", await_vm},
      {"GET", v + "/build", get_build_for_vm},
      {"POST", v + "/exec-await", exec_await},
      {"GET", v + "/files/%2Fetc%2Fhostname", get_file},
      {"PUT", v + "/files/%2Ftmp%2Fx", put_file},
      {"POST", v + "/fork", fork_vm},
      {"POST", v + "/kill", kill_vm},
      {"POST", v + "/optimize", optimize_vm},
      {"POST", v + "/snapshot", snapshot_vm},
      {"POST", v + "/start", start_vm},
      {"GET", v + "/stats/stream", stats_stream},
      {"POST", v + "/stop", stop_vm},
      {"POST", v + "/suspend", suspend_vm},
      {"POST", v + "/systemd/restart", restart_services},
      {"GET", v + "/systemd/services", list_services},
      {"POST", v + "/systemd/services", create_service},
      {"DELETE", v + "/systemd/services/web", delete_service},
      {"GET", v + "/systemd/services/web/logs", service_logs},
      {"GET", v + "/systemd/services/web/status", service_status},
      {"POST", v + "/systemd/start", start_services},
      {"POST", v + "/systemd/stop", stop_services},
      {"GET", v + "/terminals", list_terminals},
      {"GET", v + "/terminals/t1/logs", terminal_logs},
      {"GET", v + "/terminals/t1/xterm-256color", terminal_output},
      {"POST", v + "/watch-files", watch_files},
      {"GET", "/healthz", health},
      {"GET", "/openapi.json", openapi},
  };
  for (const auto& c : cases) {
    CAPTURE(c.method);
    CAPTURE(c.path);
    CHECK(routes_to(c.method, c.path.c_str(), c.handler));
  }
  // 37 spec operations + 2 of ours, and the table has exactly these.
  CHECK(std::size(cases) == api_routes().size());
}

TEST_CASE("the route table covers every path and method of the served OpenAPI document") {
  // The served document is generated from the Freestyle spec; every
  // (method, path) in it must be in the table, and nothing else.
  rapidjson::Document doc;
  doc.Parse(kOpenApiJson.data(), kOpenApiJson.size());
  REQUIRE(doc.IsObject());
  std::set<std::pair<std::string, std::string>> spec;
  for (const auto& path : doc["paths"].GetObject())
    for (const auto& op : path.value.GetObject()) {
      std::string method = op.name.GetString();
      for (auto& ch : method) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      spec.emplace(method, path.name.GetString());
    }
  std::set<std::pair<std::string, std::string>> table;
  for (const auto& r : api_routes()) {
    std::string p = r.pattern;
    if (auto star = p.find("{*"); star != std::string::npos) p.erase(star + 1, 1);
    table.emplace(r.method, p);
  }
  CHECK(spec == table);
  CHECK(table.size() == 39);
}

TEST_CASE("literal segments beat parameters; wrong method is 405 with Allow") {
  Router r(table_patterns());
  CHECK(routes_to("GET", "/v1/vms/snapshots", list_snapshots));
  RouteMatch m = r.match("DELETE", "/v1/vms/snapshots");
  CHECK(m.kind == RouteMatch::Kind::method_not_allowed);
  CHECK(m.allowed == std::vector<std::string>{"GET", "POST"});
  CHECK(r.match("PUT", "/v1/vms").kind == RouteMatch::Kind::method_not_allowed);
  CHECK(r.match("GET", "/v1/nothing").kind == RouteMatch::Kind::not_found);
  CHECK(r.match("GET", "/v1/vms/abc/unknown").kind == RouteMatch::Kind::not_found);
  CHECK(r.match("GET", "/v1/vms/").kind == RouteMatch::Kind::not_found);
  CHECK(r.match("GET", "/").kind == RouteMatch::Kind::not_found);
}

TEST_CASE("file paths: one encoded segment or a literal-slash tail") {
  std::map<std::string, std::string> p;
  CHECK(routes_to("GET", "/v1/vms/abcdefghij0123456789/files/%2Fhome%2Fuser%2Fa%20b.txt", get_file, &p));
  CHECK(p["filepath"] == "/home/user/a b.txt");
  CHECK(p["vm_id"] == "abcdefghij0123456789");
  CHECK(routes_to("GET", "/v1/vms/abcdefghij0123456789/files/home/user/x", get_file, &p));
  CHECK(p["filepath"] == "/home/user/x");
  CHECK(routes_to("GET", "/v1/vms/abcdefghij0123456789/files//etc/passwd", get_file, &p));
  CHECK(p["filepath"] == "/etc/passwd");
  CHECK(routes_to("GET", "/v1/vms/abcdefghij0123456789/files/rel.txt", get_file, &p));
  CHECK(p["filepath"] == "rel.txt");
  CHECK(routes_to("GET", "/v1/vms/abcdefghij0123456789/files/", get_file, &p));
  CHECK(p["filepath"].empty());  // the handler answers FILES_BAD_REQUEST
  Router r(table_patterns());
  CHECK(r.match("GET", "/v1/vms/abcdefghij0123456789/files/%zz").kind == RouteMatch::Kind::bad_escape);
  CHECK(r.match("GET", "/v1/vms/abcdefghij0123456789/files/a%2").kind == RouteMatch::Kind::bad_escape);
}

TEST_CASE("percent-decoding is exact") {
  CHECK(percent_decode("a%2Fb%2fc") == "a/b/c");
  CHECK(percent_decode("%41%42") == "AB");
  CHECK(percent_decode("plus+stays") == "plus+stays");
  CHECK(percent_decode("%00") == std::string(1, '\0'));
  CHECK(!percent_decode("%"));
  CHECK(!percent_decode("%4"));
  CHECK(!percent_decode("%G0"));
  CHECK(!percent_decode("abc%"));
  auto q = parse_query("lines=10&since=2024-01-01T00%3A00&search=a+b&flag&empty=");
  REQUIRE(q);
  CHECK((*q)["lines"] == "10");
  CHECK((*q)["since"] == "2024-01-01T00:00");
  CHECK((*q)["search"] == "a b");
  CHECK((*q)["flag"].empty());
  CHECK(!parse_query("a=%zz"));
}

TEST_CASE("request targets: path and query") {
  CHECK(target_path("/v1/vms?limit=1") == "/v1/vms");
  CHECK(target_query("/v1/vms?limit=1#x") == "limit=1");
  CHECK(target_path("http://host:1/v1/vms?x") == "/v1/vms");
  CHECK(target_path("") == "/");
}
