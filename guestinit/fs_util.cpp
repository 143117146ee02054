// Filesystem helpers.
#include "guestinit/fs_util.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "guestinit/protocol.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::agent {

std::string_view errno_code(int err) {
  switch (err) {
    case ENOENT:
      return code::kFileNotFound;
    case EISDIR:
      return code::kIsADirectory;
    case ENOTDIR:
      return code::kNotADirectory;
    case EACCES:
    case EPERM:
    case EROFS:
      return code::kForbidden;
    case ENAMETOOLONG:
      return code::kNameTooLong;
    case EEXIST:
      return code::kFileExists;
    case ENOTEMPTY:
      return code::kDirNotEmpty;
    case ENOSPC:
    case EDQUOT:
      return code::kNoSpace;
    case ELOOP:
    case EINVAL:
      return code::kBadRequest;
    default:
      return code::kIoError;
  }
}

std::string_view kind_name(mode_t mode) {
  if (S_ISREG(mode)) return "file";
  if (S_ISDIR(mode)) return "directory";
  if (S_ISLNK(mode)) return "symlink";
  return "other";
}

int make_dirs(const std::string& path, mode_t mode) {
  if (path.empty()) return ENOENT;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string part = path.substr(0, pos);
    if (part.empty()) continue;
    if (::mkdir(part.c_str(), mode) == 0) continue;
    int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(part.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) return ENOTDIR;
      continue;
    }
    return err;
  }
  return 0;
}

namespace {

// Removes the entry `name` inside dirfd; depth is bounded so a hostile tree
// cannot exhaust the thread's stack.
int remove_at(int dirfd, const char* name, int depth) {
  if (::unlinkat(dirfd, name, 0) == 0) return 0;
  int first = errno;
  if (first != EISDIR && first != EPERM) return first;  // POSIX allows EPERM for unlink(dir)
  if (depth > 256) return ELOOP;
  int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ENOTDIR ? first : errno;
  DIR* d = ::fdopendir(fd);
  if (d == nullptr) {
    int err = errno;
    ::close(fd);
    return err;
  }
  int rc = 0;
  while (dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n == "." || n == "..") continue;
    rc = remove_at(::dirfd(d), e->d_name, depth + 1);
    if (rc != 0) break;
  }
  ::closedir(d);
  if (rc != 0) return rc;
  return ::unlinkat(dirfd, name, AT_REMOVEDIR) == 0 ? 0 : errno;
}

}  // namespace

int remove_tree(const std::string& path) { return remove_at(AT_FDCWD, path.c_str(), 0); }

std::string parent_dir(const std::string& path) {
  size_t p = path.find_last_of('/');
  if (p == std::string::npos) return ".";
  if (p == 0) return "/";
  return path.substr(0, p);
}

std::string base_name(const std::string& path) {
  size_t p = path.find_last_of('/');
  return p == std::string::npos ? path : path.substr(p + 1);
}

Status write_file_atomic(const std::string& path, std::string_view content, mode_t mode) {
  std::string dir = parent_dir(path);
  std::string tmp = fmt::format("{}/.{}.forkvm-XXXXXX", dir, base_name(path));
  UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("create temp file in {}", dir));
  // The temp file's name says which file was being replaced.
  auto fail = [&](const char* verb) {
    int err = errno;
    ::unlink(tmp.c_str());
    return errno_error(fmt::format("{} {}", verb, tmp), err);
  };
  while (!content.empty()) {
    ssize_t n = ::write(fd.get(), content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail("write");
    content.remove_prefix(static_cast<size_t>(n));
  }
  if (::fchmod(fd.get(), mode) != 0) return fail("chmod");
  if (::fsync(fd.get()) != 0) return fail("fsync");
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("rename");
  // The rename is durable only once the directory is synced.
  if (UniqueFd dfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)); dfd.valid()) ::fsync(dfd.get());
  return {};
}

}  // namespace forkvm::agent
