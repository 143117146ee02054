// libFuzzer target: everything the API does with untrusted request bytes
// before a VM is involved: every JSON body parser, percent-decoding, query
// parsing, routing, and a whole request through Api::handle (auth, ids,
// store lookups) with an in-memory store and the 501 engine.
//
// Input: byte 0 picks the method, then "target\nbody".
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "api/auth/auth.hpp"
#include "api/models/requests.hpp"
#include "api/routes/api.hpp"
#include "api/routes/percent.hpp"
#include "api/serve/unavailable_engine.hpp"
#include "api/store/store.hpp"

namespace forkvm::api {
extern const std::string_view kOpenApiJson;
}

using namespace forkvm::api;

namespace {

struct World {
  std::unique_ptr<Store> store = open_sqlite_store(":memory:").value();
  std::unique_ptr<VmEngine> engine = make_unavailable_engine();
  std::string key = issue_api_key(*store, "fuzz", "").value().key;
  Api api{*store, *engine, kOpenApiJson};
  World() {
    // One VM and one snapshot so lookups can succeed and reach the engine.
    VmRecord vm;
    vm.id = "aaaaaaaaaaaaaaaaaaaa";
    vm.account_id = store->find_account_by_name("fuzz").value()->id;
    vm.state = "running";
    vm.config_json = "{}";
    (void)store->insert_vm(vm);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World world;
  if (size == 0) return 0;
  static constexpr const char* kMethods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"};
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  size_t nl = in.find('\n');
  std::string_view target = in.substr(0, nl);
  std::string_view body = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);

  (void)parse_create_vm(body);
  (void)parse_create_snapshot(body);
  (void)parse_snapshot_vm(body);
  (void)parse_update_snapshot(body);
  (void)parse_start_vm(body);
  (void)parse_fork_vm(body);
  (void)parse_resize_vm(body);
  (void)parse_exec(body);
  (void)parse_write_file(body);
  (void)parse_systemd_unit(body);
  (void)parse_batch_services(body);
  (void)percent_decode(target);
  (void)parse_query(target);

  HttpRequest req;
  req.method = kMethods[data[0] % std::size(kMethods)];
  req.target = std::string(target);
  req.body = std::string(body);
  req.request_id = "ri-fuzz";
  if (data[0] & 0x80) req.headers.emplace_back("authorization", "Bearer " + world.key);
  HttpReply reply = world.api.handle(req);
  if (auto* r = std::get_if<HttpResponse>(&reply)) {
    // Bad input is never a server error.
    if (r->status >= 500 && r->status != 501) __builtin_trap();
  }
  return 0;
}
