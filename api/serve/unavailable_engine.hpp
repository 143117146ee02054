// The engine `forkvm serve` uses when the VMM-backed one cannot run (no
// guest image, no KVM): every operation answers 501 NOT_IMPLEMENTED and says
// so plainly. It never pretends: no fake VMs, no made-up output. Tests derive
// from it to stand in for the engine in the few calls they drive.
#pragma once

#include <fmt/format.h>

#include <memory>
#include <string>
#include <string_view>

#include "api/engine/engine.hpp"

namespace forkvm::api {

class UnavailableEngine : public VmEngine {
 public:
  explicit UnavailableEngine(std::string reason) : reason_(std::move(reason)) {}

  ApiResult<CreatedVm> create_vm(const CallContext&, const CreateVmInput&) override {
    return unavailable("create VM");
  }
  ApiResult<StartedVm> start_vm(const CallContext&, const VmRecord&, const StartVmRequest&) override {
    return unavailable("start VM");
  }
  ApiResult<StoppedVm> stop_vm(const CallContext&, const VmRecord&) override {
    return unavailable("stop VM");
  }
  ApiStatus kill_vm(const CallContext&, const VmRecord&) override { return unavailable("kill VM"); }
  ApiResult<SuspendedVm> suspend_vm(const CallContext&, const VmRecord&) override {
    return unavailable("suspend VM");
  }
  ApiResult<VmExit> await_exit(const CallContext&, const VmRecord&) override {
    return unavailable("await VM");
  }
  ApiStatus delete_vm(const CallContext&, const VmRecord&) override { return unavailable("delete VM"); }
  ApiResult<ResizedVm> resize_vm(const CallContext&, const VmRecord&, const ResizeVmRequest&) override {
    return unavailable("resize VM");
  }
  ApiResult<OptimizedVm> optimize_vm(const CallContext&, const VmRecord&) override {
    return unavailable("optimize VM");
  }
  ApiResult<CreatedSnapshot> snapshot_vm(const CallContext&, const VmRecord&, const SnapshotInput&) override {
    return unavailable("snapshot VM");
  }
  ApiResult<ForkedVms> fork_vm(const CallContext&, const VmRecord&, const ForkInput&) override {
    return unavailable("fork VM");
  }
  ApiResult<ExecResult> exec(const CallContext&, const VmRecord&, const ExecRequest&) override {
    return unavailable("exec");
  }
  ApiResult<FileRead> read_file(const CallContext&, const VmRecord&, const std::string&) override {
    return unavailable("read file");
  }
  ApiStatus write_file(const CallContext&, const VmRecord&, const std::string&, const std::string&) override {
    return unavailable("write file");
  }
  ApiResult<std::unique_ptr<EventStream<FileEvent>>> watch_files(const CallContext&,
                                                                 const VmRecord&) override {
    return unavailable("watch files");
  }
  ApiResult<std::unique_ptr<EventStream<StatsSample>>> stream_stats(const CallContext&, const VmRecord&,
                                                                    std::chrono::milliseconds) override {
    return unavailable("stats stream");
  }
  ApiResult<std::vector<ServiceInfo>> list_services(const CallContext&, const VmRecord&) override {
    return unavailable("list services");
  }
  ApiResult<ServiceCreated> create_service(const CallContext&, const VmRecord&, const SystemdUnit&) override {
    return unavailable("create service");
  }
  ApiResult<std::string> delete_service(const CallContext&, const VmRecord&, const std::string&) override {
    return unavailable("delete service");
  }
  ApiResult<ServiceStatus> service_status(const CallContext&, const VmRecord&, const std::string&) override {
    return unavailable("service status");
  }
  ApiResult<std::vector<JournalEntry>> service_logs(const CallContext&, const VmRecord&, const std::string&,
                                                    std::optional<int64_t>,
                                                    const std::optional<std::string>&) override {
    return unavailable("service logs");
  }
  ApiResult<std::vector<ServiceActionResult>> service_action(const CallContext&, const VmRecord&,
                                                             ServiceAction,
                                                             const std::vector<std::string>&) override {
    return unavailable("service start/stop/restart");
  }
  ApiResult<std::vector<TerminalInfo>> list_terminals(const CallContext&, const VmRecord&) override {
    return unavailable("list terminals");
  }
  ApiResult<std::vector<TerminalLine>> terminal_logs(const CallContext&, const VmRecord&,
                                                     const std::string&) override {
    return unavailable("terminal logs");
  }
  ApiResult<std::string> terminal_output(const CallContext&, const VmRecord&, const std::string&) override {
    return unavailable("terminal output");
  }

 protected:
  [[nodiscard]] ApiError unavailable(std::string_view operation) const {
    return api_error(ErrorCode::NotImplemented,
                     fmt::format("{} needs the VM engine, which is not available: {}", operation, reason_));
  }

 private:
  std::string reason_;
};

[[nodiscard]] std::unique_ptr<VmEngine> make_unavailable_engine(
    std::string reason = "this build has no VM engine");

}  // namespace forkvm::api
