// File requests: read, write (atomic), list, stat, mkdir, remove. Paths are
// used as given: it is the guest's own filesystem and the caller may name
// any of it. With "user", the request's thread takes that user's
// filesystem identity so permissions apply and new files belong to them.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "guestinit/ansi.hpp"
#include "guestinit/batcher.hpp"
#include "guestinit/fs_util.hpp"
#include "guestinit/ops.hpp"
#include "guestinit/stream.hpp"
#include "guestinit/users.hpp"

namespace forkvm::agent {
namespace {

void end_errno(Stream& s, std::string_view what, const std::string& path, int err) {
  s.end_error(errno_code(err), fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

// Reads "path" and "user", switching identity. nullopt: the stream was ended.
struct FileRequest {
  std::string path;
  std::optional<Account> account;
};
std::optional<FileRequest> file_request(Stream& s, const JsonValue& req) {
  FileRequest r{str_or(req, "path"), std::nullopt};
  // A NUL would silently cut the path short at the syscall.
  if (r.path.empty() || r.path.find('\0') != std::string::npos) {
    s.end_error(code::kBadRequest, "path is empty or contains NUL");
    return std::nullopt;
  }
  if (auto u = get_str(req, "user"); u && !u->empty()) {
    r.account = lookup_account(*u);
    if (!r.account) {
      s.end_error(code::kUserNotFound, fmt::format("user not found: {}", *u));
      return std::nullopt;
    }
  }
  return r;
}

std::optional<uid_t> owner_from(const JsonValue& req) {
  if (auto n = get_i64(req, "uid"); n && *n >= 0) return static_cast<uid_t>(*n);
  if (auto o = get_str(req, "owner"); o && !o->empty())
    if (auto a = lookup_account(*o)) return a->uid;
  return std::nullopt;
}
std::optional<gid_t> group_from(const JsonValue& req) {
  if (auto n = get_i64(req, "gid"); n && *n >= 0) return static_cast<gid_t>(*n);
  if (auto g = get_str(req, "group"); g && !g->empty()) return lookup_gid(*g);
  return std::nullopt;
}

}  // namespace

void op_file_read(Stream& s, const JsonValue& req) {
  auto r = file_request(s, req);
  if (!r) return;
  ThreadIdentity id(r->account ? &*r->account : nullptr);
  // O_NONBLOCK: opening a FIFO must not hang the request; it is refused below.
  UniqueFd fd(::open(r->path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  if (!fd.valid()) return end_errno(s, "open", r->path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return end_errno(s, "stat", r->path, errno);
  if (S_ISDIR(st.st_mode)) return end_errno(s, "read", r->path, EISDIR);
  if (!S_ISREG(st.st_mode))
    return s.end_error(code::kBadRequest, fmt::format("{} is not a regular file", r->path));
  ::fcntl(fd.get(), F_SETFL, 0);
  JsonWriter head;
  head.begin_object()
      .field("size", static_cast<int64_t>(st.st_size))
      .field("mode", st.st_mode & 07777u)
      .end_object();
  if (!s.event(head.view())) return;
  // Streamed in chunks: a large file is never held whole in memory.
  std::string buf(kDataChunk, '\0');
  uint64_t total = 0;
  for (;;) {
    if (s.cancelled()) return s.end_error(code::kCancelled, "cancelled");
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return end_errno(s, "read", r->path, errno);
    if (n == 0) break;
    if (!s.data(Channel::Content, std::string_view(buf.data(), static_cast<size_t>(n)))) return;
    total += static_cast<uint64_t>(n);
  }
  s.end_ok(JsonWriter().begin_object().field("bytes", total).end_object().view());
}

void op_file_write(Stream& s, const JsonValue& req) {
  auto r = file_request(s, req);
  if (!r) return;
  ThreadIdentity id(r->account ? &*r->account : nullptr);
  std::string target = r->path;
  // Writing through a symlink updates its target rather than replacing the
  // link with a regular file.
  struct stat lst {};
  if (::lstat(target.c_str(), &lst) == 0 && S_ISLNK(lst.st_mode)) {
    if (char* real = ::realpath(target.c_str(), nullptr)) {
      target = real;
      ::free(real);
    }
  }
  std::string dir = parent_dir(target);
  if (bool_or(req, "mkdirs", true)) {
    if (int err = make_dirs(dir, 0755); err != 0) return end_errno(s, "mkdir", dir, err);
  }
  struct stat old {};
  bool exists = ::stat(target.c_str(), &old) == 0;
  if (exists && S_ISDIR(old.st_mode)) return end_errno(s, "write", target, EISDIR);
  // The temp file sits in the same directory so rename() is atomic; its name
  // stays short enough for any base name under NAME_MAX.
  std::string base = base_name(target);
  std::string tmp = fmt::format("{}/.{}.forkvm-XXXXXX", dir, base.size() > 200 ? "long" : base);
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd.valid()) return end_errno(s, "create temp file in", dir, errno);
  auto fail = [&](std::string_view what, int err) {
    ::unlink(tmp.c_str());
    end_errno(s, what, target, err);
  };
  uint64_t total = 0;
  while (auto chunk = s.pop_input()) {
    std::string_view b = *chunk;
    while (!b.empty()) {
      ssize_t n = ::write(fd.get(), b.data(), b.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail("write", errno);
      b.remove_prefix(static_cast<size_t>(n));
    }
    total += chunk->size();
  }
  if (s.cancelled()) {
    ::unlink(tmp.c_str());
    return s.end_error(code::kCancelled, "upload cancelled");
  }
  mode_t mode = exists ? (old.st_mode & 07777u) : 0644u;
  if (auto m = get_i64(req, "mode"); m && *m >= 0 && *m <= 07777) mode = static_cast<mode_t>(*m);
  if (::fchmod(fd.get(), mode) != 0) return fail("chmod", errno);
  auto uid = owner_from(req);
  auto gid = group_from(req);
  if (!uid && exists) uid = old.st_uid;
  if (!gid && exists) gid = old.st_gid;
  if (uid || gid) {
    if (::fchown(fd.get(), uid.value_or(static_cast<uid_t>(-1)), gid.value_or(static_cast<gid_t>(-1))) != 0 &&
        (get_i64(req, "uid") || get_str(req, "owner") || get_i64(req, "gid") || get_str(req, "group")))
      return fail("chown", errno);  // only an explicit owner is an error; keeping the old one is best effort
  }
  if (::fsync(fd.get()) != 0) return fail("fsync", errno);
  fd.reset();
  if (::rename(tmp.c_str(), target.c_str()) != 0) return fail("rename onto", errno);
  // The rename is durable only once the directory is synced.
  if (UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); dfd.valid()) ::fsync(dfd.get());
  s.end_ok(JsonWriter().begin_object().field("bytes", total).end_object().view());
}

void op_file_list(Stream& s, const JsonValue& req) {
  auto r = file_request(s, req);
  if (!r) return;
  ThreadIdentity id(r->account ? &*r->account : nullptr);
  DIR* d = ::opendir(r->path.c_str());
  if (d == nullptr) return end_errno(s, "list", r->path, errno);
  std::vector<std::pair<std::string, std::string_view>> entries;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    std::string_view kind = "other";
    switch (e->d_type) {
      case DT_REG:
        kind = "file";
        break;
      case DT_DIR:
        kind = "directory";
        break;
      case DT_LNK:
        kind = "symlink";
        break;
      case DT_UNKNOWN: {
        struct stat st {};
        if (::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0) kind = kind_name(st.st_mode);
        break;
      }
      default:
        break;
    }
    entries.emplace_back(std::string(n), kind);
  }
  ::closedir(d);
  std::sort(entries.begin(), entries.end());
  ItemBatcher b(s);
  for (const auto& [name, kind] : entries) {
    JsonWriter w;
    w.begin_object().field("name", name).field("kind", kind).end_object();
    if (!b.add(w.view())) return;
  }
  if (!b.flush()) return;
  s.end_ok(JsonWriter().begin_object().field("count", b.count()).end_object().view());
}

void op_file_stat(Stream& s, const JsonValue& req) {
  auto r = file_request(s, req);
  if (!r) return;
  ThreadIdentity id(r->account ? &*r->account : nullptr);
  struct stat st {};
  bool follow = bool_or(req, "follow", false);
  if ((follow ? ::stat(r->path.c_str(), &st) : ::lstat(r->path.c_str(), &st)) != 0)
    return end_errno(s, "stat", r->path, errno);
  int64_t mtime_ms = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
  JsonWriter w;
  w.begin_object().field("size", static_cast<int64_t>(st.st_size)).field("kind", kind_name(st.st_mode));
  w.field("mode", st.st_mode & 07777u).field("modeOctal", fmt::format("{:04o}", st.st_mode & 07777u));
  w.field("uid", st.st_uid).field("gid", st.st_gid).field("user", user_name(st.st_uid));
  w.field("group", group_name(st.st_gid)).field("mtimeMs", mtime_ms).field("mtime", iso8601_ms(mtime_ms));
  if (S_ISLNK(st.st_mode)) {
    char buf[4096];
    ssize_t n = ::readlink(r->path.c_str(), buf, sizeof buf);
    if (n >= 0) w.field("linkTarget", std::string_view(buf, static_cast<size_t>(n)));
  }
  w.end_object();
  s.end_ok(w.view());
}

void op_file_mkdir(Stream& s, const JsonValue& req) {
  auto r = file_request(s, req);
  if (!r) return;
  ThreadIdentity id(r->account ? &*r->account : nullptr);
  auto mode = static_cast<mode_t>(std::clamp<int64_t>(i64_or(req, "mode", 0755), 0, 07777));
  int err = 0;
  if (bool_or(req, "parents", true))
    err = make_dirs(r->path, mode);
  else if (::mkdir(r->path.c_str(), mode) != 0)
    err = errno;
  if (err != 0) return end_errno(s, "mkdir", r->path, err);
  s.end_ok();
}

void op_file_remove(Stream& s, const JsonValue& req) {
  auto r = file_request(s, req);
  if (!r) return;
  ThreadIdentity id(r->account ? &*r->account : nullptr);
  struct stat st {};
  if (::lstat(r->path.c_str(), &st) != 0) return end_errno(s, "remove", r->path, errno);
  int err = 0;
  if (!S_ISDIR(st.st_mode))
    err = ::unlink(r->path.c_str()) == 0 ? 0 : errno;
  else if (bool_or(req, "recursive", false))
    err = remove_tree(r->path);
  else
    err = ::rmdir(r->path.c_str()) == 0 ? 0 : errno;
  if (err != 0) return end_errno(s, "remove", r->path, err);
  s.end_ok();
}

}  // namespace forkvm::agent
