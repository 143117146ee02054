// watch: recursive inotify on a path, streamed as Event frames
// {"eventType": create|modify|delete|move, "filename": <relative to the
// watched path>} until the host cancels the stream. New subdirectories join
// the watch as they appear. A rename inside the tree seen as one
// MOVED_FROM/MOVED_TO pair becomes one "move" with "oldFilename"; a move in
// from outside is a "create", a move out is a "delete".
#include <dirent.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "guestinit/fs_util.hpp"
#include "guestinit/ops.hpp"
#include "guestinit/stream.hpp"

namespace forkvm::agent {
namespace {

constexpr uint32_t kMask =
    IN_CREATE | IN_MODIFY | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_ATTRIB | IN_ONLYDIR;
constexpr size_t kMaxWatches = 65536;

class Watcher {
 public:
  Watcher(Stream& s, std::string root, bool recursive)
      : s_(s), root_(std::move(root)), recursive_(recursive) {}

  int start() {
    fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (!fd_.valid()) return errno;
    struct stat st {};
    if (::stat(root_.c_str(), &st) != 0) return errno;
    if (!S_ISDIR(st.st_mode)) {
      // A single file: watch it itself; events name the path as given.
      int wd = ::inotify_add_watch(fd_.get(), root_.c_str(),
                                   IN_MODIFY | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF);
      if (wd < 0) return errno;
      dirs_[wd] = "";
      single_file_ = true;
      return 0;
    }
    return add_tree(root_, "", 0);
  }

  void run() {
    JsonWriter ready;
    ready.begin_object().field("ready", true).field("watches", dirs_.size()).end_object();
    if (!s_.event(ready.view())) return;
    alignas(inotify_event) char buf[64 * 1024];
    while (!s_.cancelled()) {
      pollfd p[2] = {{fd_.get(), POLLIN, 0}, {s_.wake_fd(), POLLIN, 0}};
      if (::poll(p, 2, 1000) < 0 && errno != EINTR) break;
      s_.drain_wake();
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) continue;
      if (!handle_batch(buf, static_cast<size_t>(n))) return;
    }
  }

  [[nodiscard]] uint64_t sent() const { return sent_; }

 private:
  // rel is the directory's path relative to root ("" for root itself).
  int add_tree(const std::string& abs, const std::string& rel, int depth) {
    if (dirs_.size() >= kMaxWatches || depth > 64) return 0;
    int wd = ::inotify_add_watch(fd_.get(), abs.c_str(), kMask);
    if (wd < 0) return rel.empty() ? errno : 0;  // subdirectories we cannot watch are skipped
    dirs_[wd] = rel;
    if (!recursive_) return 0;
    DIR* d = ::opendir(abs.c_str());
    if (d == nullptr) return 0;
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n == "." || n == ".." || e->d_type != DT_DIR) continue;
      add_tree(abs + "/" + e->d_name, join(rel, e->d_name), depth + 1);
    }
    ::closedir(d);
    return 0;
  }

  static std::string join(const std::string& a, std::string_view b) {
    return a.empty() ? std::string(b) : a + "/" + std::string(b);
  }

  bool emit(std::string_view type, const std::string& name, const std::string* old = nullptr) {
    JsonWriter w;
    w.begin_object().field("eventType", type).field("filename", name);
    if (old != nullptr) w.field("oldFilename", *old);
    w.end_object();
    ++sent_;
    return s_.event(w.view());
  }

  bool handle_batch(const char* buf, size_t len) {
    std::map<uint32_t, std::string> moved_from;  // cookie -> name, for pairing within the batch
    std::string last_modify;
    for (size_t off = 0; off + sizeof(inotify_event) <= len;) {
      inotify_event ev;
      std::memcpy(&ev, buf + off, sizeof ev);
      size_t total = sizeof(inotify_event) + ev.len;
      if (off + total > len) break;
      std::string name(buf + off + sizeof(inotify_event), ev.len);
      name.resize(std::strlen(name.c_str()));
      off += total;

      auto it = dirs_.find(ev.wd);
      if (it == dirs_.end()) continue;
      std::string rel = single_file_ ? root_ : join(it->second, name);
      if (ev.mask & IN_IGNORED) {
        dirs_.erase(it);
        continue;
      }
      if (ev.mask & IN_Q_OVERFLOW) continue;
      bool ok = true;
      if (ev.mask & IN_CREATE) {
        if ((ev.mask & IN_ISDIR) && recursive_) add_tree(root_ + "/" + rel, rel, 0);
        ok = emit("create", rel);
      } else if (ev.mask & (IN_MODIFY | IN_ATTRIB)) {
        // Writes arrive as bursts of IN_MODIFY; one event per file per batch.
        if (rel != last_modify) ok = emit("modify", rel);
        last_modify = rel;
        continue;
      } else if (ev.mask & IN_DELETE) {
        ok = emit("delete", rel);
      } else if (ev.mask & IN_MOVED_FROM) {
        moved_from[ev.cookie] = rel;
      } else if (ev.mask & IN_MOVED_TO) {
        auto m = moved_from.find(ev.cookie);
        if (m != moved_from.end()) {
          ok = emit("move", rel, &m->second);
          moved_from.erase(m);
        } else {
          ok = emit("create", rel);
        }
        if ((ev.mask & IN_ISDIR) && recursive_) add_tree(root_ + "/" + rel, rel, 0);
      } else if (ev.mask & (IN_DELETE_SELF | IN_MOVE_SELF)) {
        if (single_file_) ok = emit("delete", rel);
      }
      last_modify.clear();
      if (!ok) return false;
    }
    for (const auto& [cookie, rel] : moved_from)
      if (!emit("delete", rel)) return false;
    return true;
  }

  Stream& s_;
  std::string root_;
  bool recursive_;
  bool single_file_ = false;
  UniqueFd fd_;
  std::map<int, std::string> dirs_;  // watch descriptor -> path relative to root
  uint64_t sent_ = 0;
};

}  // namespace

void op_watch(Stream& s, const JsonValue& req) {
  std::string path = str_or(req, "path", "/");
  if (path.find('\0') != std::string::npos) return s.end_error(code::kBadRequest, "path contains NUL");
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  Watcher w(s, path, bool_or(req, "recursive", true));
  if (int err = w.start(); err != 0)
    return s.end_error(errno_code(err), fmt::format("watch {}: {}", path, std::strerror(err)));
  w.run();
  s.end_ok(JsonWriter().begin_object().field("events", w.sent()).end_object().view());
}

}  // namespace forkvm::agent
