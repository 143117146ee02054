// Where a virtio-blk device's bytes live. A raw file or block device hands
// the device its fd, and the device does zero-copy io_uring readv/writev on
// it (direct_fd() >= 0). Other backends (the copy-on-write layered disk in
// devices/storage/) do their own I/O through read/write/flush, which the
// device calls on a worker thread of its own (blk_worker.hpp), one call at
// a time.
//
// The device bounds every request by size_bytes() before calling a backend
// (blk_request.cpp); backends check again and refuse, never clamp.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "vmm/result.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::virtio {

class BlkBackend {
 public:
  BlkBackend() = default;
  BlkBackend(const BlkBackend&) = delete;
  BlkBackend& operator=(const BlkBackend&) = delete;
  virtual ~BlkBackend() = default;

  [[nodiscard]] virtual uint64_t size_bytes() const = 0;
  [[nodiscard]] virtual bool read_only() const = 0;
  // The default GET_ID string.
  [[nodiscard]] virtual std::string name() const = 0;
  // An fd the device may read and write at disk offsets with io_uring, or
  // -1: then it calls the synchronous methods below instead.
  [[nodiscard]] virtual int direct_fd() const { return -1; }

  [[nodiscard]] virtual Status read(uint64_t offset, std::span<const iovec> iov) = 0;
  [[nodiscard]] virtual Status write(uint64_t offset, std::span<const iovec> iov) = 0;
  [[nodiscard]] virtual Status flush() = 0;
};

// Today's behaviour: one host file or block device, I/O via io_uring.
class RawFileBackend final : public BlkBackend {
 public:
  static Result<std::unique_ptr<RawFileBackend>> open(const std::string& path, bool read_only);

  [[nodiscard]] uint64_t size_bytes() const override { return size_; }
  [[nodiscard]] bool read_only() const override { return read_only_; }
  [[nodiscard]] std::string name() const override;
  [[nodiscard]] int direct_fd() const override { return fd_.get(); }
  [[nodiscard]] Status read(uint64_t offset, std::span<const iovec> iov) override;
  [[nodiscard]] Status write(uint64_t offset, std::span<const iovec> iov) override;
  [[nodiscard]] Status flush() override;

 private:
  RawFileBackend(UniqueFd fd, std::string path, uint64_t size, bool read_only)
      : fd_(std::move(fd)), path_(std::move(path)), size_(size), read_only_(read_only) {}

  UniqueFd fd_;
  std::string path_;
  uint64_t size_;
  bool read_only_;
};

}  // namespace forkvm::virtio
