// `forkvm bench api`'s side of the wire: a `forkvm serve` it starts itself
// (free loopback port, temporary data directory, a key from `forkvm keys
// create`) or one given by URL and key, and the few API calls the benchmark
// makes, each answering an error value when the call failed.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "api/cli/args.hpp"
#include "api/cli/http_client.hpp"
#include "api/engine/vmm_process.hpp"
#include "vmm/result.hpp"

namespace forkvm::cli {

struct BenchServerOptions {
  std::optional<std::string> url, key;  // a running server; else one is started
  std::optional<std::string> data_dir;  // for a started server: kept (its golden snapshot too)
  std::string run_dir = "/run/forkvm";  // where the server's VMs keep their sockets
  uint64_t vm_mem_mib = 0;              // for a started server: --vm-mem (0: its default)
};

class BenchServer {
 public:
  static Result<std::unique_ptr<BenchServer>> open(const BenchServerOptions& o);
  // From the options every API benchmark takes: --url, --key, --data, --run-dir.
  static Result<std::unique_ptr<BenchServer>> open(const Args& args, uint64_t vm_mem_mib);
  // Deletes every VM this benchmark made, then stops the server it started.
  ~BenchServer();
  BenchServer(const BenchServer&) = delete;
  BenchServer& operator=(const BenchServer&) = delete;

  // POST /v1/vms with `body`: the new VM's id.
  Result<std::string> create_vm(const std::string& body = "{}");
  // POST /v1/vms/snapshots with `body` (a template build): the snapshot id.
  Result<std::string> create_snapshot(const std::string& body);
  Status delete_snapshot(const std::string& snapshot_id);
  // `command` through POST /v1/vms/{id}/exec-await; an error unless it exited 0.
  Status exec(const std::string& vm_id, const std::string& command);
  // POST /v1/vms/{id}/fork {"count":n}: the children's ids.
  Result<std::vector<std::string>> fork(const std::string& vm_id, uint64_t count);
  Status delete_vm(const std::string& vm_id);

  // The VM's agent socket in the engine's layout (<run>/<id>/vsock.sock).
  [[nodiscard]] std::string agent_socket(const std::string& vm_id) const;
  [[nodiscard]] std::string describe() const;

 private:
  BenchServer() = default;
  Result<HttpResponse> call(const std::string& method, const std::string& path,
                            std::optional<std::string> body) const;
  Status start(const BenchServerOptions& o);
  void track(const std::string& id, bool live);

  ServerUrl url_;
  std::string url_text_, key_, run_dir_, data_dir_;
  bool remove_data_ = false;
  std::shared_ptr<engine::VmmProcess> serve_;  // the server we started, if any
  std::mutex mu_;
  std::set<std::string> vms_;  // made here and not deleted yet
};

}  // namespace forkvm::cli
