// Small per-VM text files (resources, workdir): read whole, written atomically.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace forkvm::engine {

// The file's text, or "" when it is missing or unreadable. POSIX reads: the
// iostream iterators trip GCC 12's -Wnull-dereference.
inline std::string read_text_file(const std::string& path, size_t max = 1 << 20) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {};
  std::string out;
  char buf[4096];
  ssize_t n = 0;
  while (out.size() < max && (n = ::read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return out;
}

}  // namespace forkvm::engine
