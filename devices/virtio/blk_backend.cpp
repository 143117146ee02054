#include "devices/virtio/blk_backend.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "devices/storage/file_io.hpp"

namespace forkvm::virtio {
namespace {

Result<uint64_t> disk_size(int fd, const std::string& path) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errno_error(fmt::format("stat disk {}", path));
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    uint64_t size = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size) != 0)
      return errno_error(fmt::format("size of block device {}", path));
    return size;
  }
  return make_error("disk {} is neither a regular file nor a block device", path);
}

}  // namespace

Result<std::unique_ptr<RawFileBackend>> RawFileBackend::open(const std::string& path, bool read_only) {
  UniqueFd fd(::open(path.c_str(), (read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC));
  if (!fd.valid()) return errno_error(fmt::format("open disk {}", path));
  const uint64_t size = FORKVM_TRY(disk_size(fd.get(), path));
  return std::unique_ptr<RawFileBackend>(new RawFileBackend(std::move(fd), path, size, read_only));
}

std::string RawFileBackend::name() const { return std::filesystem::path(path_).filename().string(); }

Status RawFileBackend::read(uint64_t offset, std::span<const iovec> iov) {
  return storage::preadv_full(fd_.get(), iov, offset).context(path_);
}

Status RawFileBackend::write(uint64_t offset, std::span<const iovec> iov) {
  if (read_only_) return make_error("write to read-only disk {}", path_);
  return storage::pwritev_full(fd_.get(), iov, offset).context(path_);
}

Status RawFileBackend::flush() {
  if (::fdatasync(fd_.get()) != 0) return errno_error(fmt::format("fdatasync {}", path_));
  return {};
}

}  // namespace forkvm::virtio
