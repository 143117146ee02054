#include "devices/storage/layer_store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "devices/storage/file_io.hpp"
#include "devices/storage/layer_map.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::storage {
namespace {

namespace fs = std::filesystem;
constexpr std::string_view kRefsHeader = "forkvm-refs 1";
constexpr uint64_t kMaxRefsBytes = 1 << 20;

std::string refs_path(const std::string& root, const std::string& id) {
  return layer_dir(root, id) + "/refs";
}

// Held for the duration of one store operation.
Result<UniqueFd> lock_root(const std::string& root) {
  std::error_code ec;
  fs::create_directories(root, ec);
  if (ec) return make_error("create layers root {}: {}", root, ec.message());
  const std::string path = root + "/.lock";
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
  if (!fd.valid()) return errno_error(fmt::format("open {}", path));
  while (::flock(fd.get(), LOCK_EX) != 0) {
    if (errno != EINTR) return errno_error(fmt::format("lock {}", path));
  }
  return fd;
}

Result<std::vector<std::string>> read_refs(const std::string& root, const std::string& id) {
  const std::string path = refs_path(root, id);
  if (!fs::exists(layer_dir(root, id))) return make_error("layer {} does not exist in {}", id, root);
  if (!fs::exists(path)) return std::vector<std::string>{};
  const auto bytes = FORKVM_TRY(read_file(path, kMaxRefsBytes));
  std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  std::vector<std::string> out;
  bool first = true;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    const std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (first) {
      if (line != kRefsHeader) return make_error("refs file {}: not a forkvm refs file (version 1)", path);
      first = false;
      continue;
    }
    if (!line.empty()) out.emplace_back(line);
  }
  if (first) return make_error("refs file {}: empty", path);
  return out;
}

Status write_refs(const std::string& root, const std::string& id, const std::vector<std::string>& refs) {
  std::string text = std::string(kRefsHeader) + "\n";
  for (const auto& r : refs) text += r + "\n";
  return write_file_atomic(refs_path(root, id), {reinterpret_cast<const uint8_t*>(text.data()), text.size()});
}

Status check_holder(const std::string& holder) {
  if (holder.empty() || holder.find('\n') != std::string::npos)
    return make_error("bad layer holder name '{}'", holder);
  return {};
}

Result<std::string> new_id() {
  uint64_t r = 0;
  if (::getrandom(&r, sizeof r, 0) != sizeof r) return errno_error("getrandom for a layer id");
  return fmt::format("{:016x}", r);
}

}  // namespace

bool valid_layer_id(std::string_view id) {
  return id.size() == 16 && std::all_of(id.begin(), id.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

std::string layer_dir(const std::string& root, const std::string& id) { return root + "/" + id; }
std::string layer_data_path(const std::string& root, const std::string& id) {
  return layer_dir(root, id) + "/data";
}
std::string layer_map_path(const std::string& root, const std::string& id) {
  return layer_dir(root, id) + "/map";
}

Result<std::string> create_layer(const std::string& root, uint64_t size, uint32_t cluster_shift,
                                 const std::string& holder) {
  FORKVM_CHECK(check_holder(holder));
  const auto map = FORKVM_TRY(LayerMap::create(size, cluster_shift));
  auto lock = FORKVM_TRY(lock_root(root));
  std::string id = FORKVM_TRY(new_id());
  const std::string dir = layer_dir(root, id);
  if (::mkdir(dir.c_str(), 0755) != 0) return errno_error(fmt::format("create layer {}", dir));
  const std::string data = layer_data_path(root, id);
  UniqueFd fd(::open(data.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd.valid()) return errno_error(fmt::format("create {}", data));
  // Sparse: the data file costs only the clusters written into it.
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) return errno_error(fmt::format("size {}", data));
  FORKVM_CHECK(map.save(layer_map_path(root, id)));
  FORKVM_CHECK(write_refs(root, id, {holder}));
  FORKVM_CHECK(fsync_dir(root));
  return id;
}

Status retain(const std::string& root, const std::string& id, const std::string& holder) {
  FORKVM_CHECK(check_holder(holder));
  auto lock = FORKVM_TRY(lock_root(root));
  auto refs = FORKVM_TRY(read_refs(root, id));
  if (std::find(refs.begin(), refs.end(), holder) != refs.end()) return {};
  refs.push_back(holder);
  return write_refs(root, id, refs);
}

Status release(const std::string& root, const std::string& id, const std::string& holder) {
  auto lock = FORKVM_TRY(lock_root(root));
  auto refs = FORKVM_TRY(read_refs(root, id));
  const auto it = std::find(refs.begin(), refs.end(), holder);
  if (it == refs.end()) return {};
  refs.erase(it);
  return write_refs(root, id, refs);
}

Result<std::vector<std::string>> holders(const std::string& root, const std::string& id) {
  auto lock = FORKVM_TRY(lock_root(root));
  return read_refs(root, id);
}

Result<std::vector<std::string>> gc(const std::string& root) {
  if (!fs::is_directory(root)) return make_error("layers root {} is not a directory", root);
  auto lock = FORKVM_TRY(lock_root(root));
  std::vector<std::string> removed;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string id = entry.path().filename().string();
    if (!entry.is_directory() || !valid_layer_id(id)) continue;
    auto refs = read_refs(root, id);
    if (!refs || !refs->empty()) continue;  // unreadable refs: keep, a human should look
    // A layer some process has open (flock'ed) stays, whatever its refs say.
    UniqueFd data(::open(layer_data_path(root, id).c_str(), O_RDONLY | O_CLOEXEC));
    if (data.valid() && ::flock(data.get(), LOCK_EX | LOCK_NB) != 0) continue;
    fs::remove_all(entry.path(), ec);
    if (ec) return make_error("remove layer {}: {}", entry.path().string(), ec.message());
    removed.push_back(id);
  }
  if (ec) return make_error("list layers root {}: {}", root, ec.message());
  return removed;
}

}  // namespace forkvm::storage
