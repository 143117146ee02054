// LocalEngine: growing a VM's root disk (resize with rootfsSizeGb).
//
//   running or suspended: the VMM grows the disk online ({"op":"grow-disk"},
//       vmm/control.hpp; a suspended VM is resumed first, as an exec would),
//       the guest sees the capacity change and the agent runs resize2fs on
//       the mounted root filesystem. The answer comes when df shows it.
//   stopped (or lost): the chain grows offline and the filesystem at the
//       next start (launch with grow_fs).
// Disks never shrink: a smaller size is refused and nothing changes.
#include <fmt/format.h>

#include "api/engine/local_engine_impl.hpp"
#include "api/models/json_out.hpp"
#include "devices/storage/chain_ops.hpp"
#include "vmm/control.hpp"
#include "vmm/log.hpp"

namespace forkvm::engine {
namespace {

ApiError resize_failed(std::string_view what, const std::string& why) {
  return api_error(ErrorCode::ResizeFailed, fmt::format("{}: {}", what, why));
}

// The guest's driver re-reads the capacity on the configuration interrupt,
// from a workqueue: wait (bounded) until the block device shows the new
// size, then grow the filesystem into it.
std::string grow_fs_command(uint64_t bytes) {
  return fmt::format(
      "want={}; for i in $(seq 100); do [ \"$(cat /sys/block/vda/size)\" -ge \"$want\" ] && break; sleep "
      "0.1; "
      "done; [ \"$(cat /sys/block/vda/size)\" -ge \"$want\" ] || {{ echo \"the guest still sees "
      "$(cat /sys/block/vda/size) sectors\"; exit 1; }}; resize2fs /dev/vda 2>&1",
      bytes / 512);
}

}  // namespace

ApiResult<ResizedVm> LocalEngine::grow_root_disk(const VmRecord& vm, uint64_t bytes) {
  const std::string chain = vm_dir(vm.id) + "/disk/chain";
  const auto current = storage::load_chain(chain);
  if (!current.ok()) return resize_failed("the VM's root disk", current.error().message);
  if (bytes < current->size) {
    return api_error(ErrorCode::InvalidParameters,
                     fmt::format("rootfsSizeGb: the root disk is {} bytes and disks only grow, not shrink",
                                 current->size));
  }
  if (bytes == current->size) return ResizedVm{};
  {
    auto lock = op_lock(vm.id);
    std::lock_guard guard(*lock);
    auto live = find(vm.id);
    if (!(live && live->vmm->running()) && vm.state != "suspended") {
      if (auto s = storage::grow_chain(chain, bytes); !s.ok())
        return resize_failed("growing the root disk", s.error().message);
      log(LogLevel::info,
          "engine: VM {}: root disk grown to {} bytes; its filesystem grows at the next start", vm.id, bytes);
      return ResizedVm{};
    }
  }
  auto live = FORKVM_TRY(running(vm));  // resumes a suspended VM
  auto lock = op_lock(vm.id);
  std::lock_guard guard(*lock);
  JsonOut req;
  req.begin_object().field("op", "grow-disk").key("disk").unum(0).key("bytes").unum(bytes).end_object();
  auto reply = control_request(live->control_socket, req.take(), 30000);
  if (!reply.ok()) return resize_failed("growing the root disk through the VMM", reply.error().message);
  if (reply->find("\"ok\":true") == std::string::npos)
    return resize_failed("the VMM refused to grow the root disk", *reply);
  auto fs = live->agent(150000).exec({.command = grow_fs_command(bytes), .timeout_ms = 120000});
  if (!fs.ok()) return resize_failed("the disk grew but resize2fs in the guest failed", fs.error().message);
  if (fs->exit_code != 0) {
    return resize_failed("the disk grew but resize2fs in the guest failed",
                         fmt::format("exit {}: {}", fs->exit_code, fs->stdout_data));
  }
  log(LogLevel::info, "engine: VM {}: root disk and filesystem grown online to {} bytes", vm.id, bytes);
  return ResizedVm{vm.state == "suspended"};
}

}  // namespace forkvm::engine
