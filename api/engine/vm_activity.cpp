// LocalEngine's view of a running VM for the idle timeout: bytes through its
// host-side veth (devices/net/host_network.hpp names it fkvm<slot>h) and the
// last API call into it (LocalEngine::running() stamps every guest call).
#include <fmt/format.h>

#include "api/engine/local_engine_impl.hpp"
#include "api/engine/text_file.hpp"

namespace forkvm::engine {
namespace {

std::optional<uint64_t> read_counter(const std::string& path) {
  std::string text = read_text_file(path);
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (end == text.c_str()) return std::nullopt;
  return v;
}

// A running VM is referenced by live_ and by its exit watcher; any further
// reference is a call (exec, files, stream, snapshot) using it right now.
constexpr long kIdleReferences = 2;

}  // namespace

std::optional<VmActivity> LocalEngine::activity(const VmRecord& vm) {
  VmActivity out;
  std::string dev;
  {
    std::lock_guard lock(mu_);
    auto it = live_.find(vm.id);
    if (it == live_.end() || !it->second->vmm->running()) return std::nullopt;
    out.busy = it->second.use_count() > kIdleReferences;
    out.last_api_ms = it->second->last_api_ms;
    dev = fmt::format("/sys/class/net/fkvm{}h/statistics/", it->second->net_slot);
  }
  auto rx = read_counter(dev + "rx_bytes");
  auto tx = read_counter(dev + "tx_bytes");
  if (rx && tx) out.net_bytes = *rx + *tx;
  return out;
}

}  // namespace forkvm::engine
