// Small POSIX file helpers for the layer store: whole-file reads with a
// size cap (a file's length is never trusted), atomic replacement by
// rename, and full-length pread/pwrite that retry short transfers.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "vmm/result.hpp"

namespace forkvm::storage {

// Reads all of `path`; refuses a file longer than max_bytes.
[[nodiscard]] Result<std::vector<uint8_t>> read_file(const std::string& path, uint64_t max_bytes);

// Replaces `path` atomically: write path.tmp, fdatasync, rename, fsync the
// directory. A crash leaves either the old or the new file, never a torn one.
[[nodiscard]] Status write_file_atomic(const std::string& path, std::span<const uint8_t> bytes);

[[nodiscard]] Status fsync_dir(const std::string& dir);

// Transfers exactly the iovecs' total length or fails (EOF on read is an
// error: callers only read ranges they know exist).
[[nodiscard]] Status preadv_full(int fd, std::span<const iovec> iov, uint64_t offset);
[[nodiscard]] Status pwritev_full(int fd, std::span<const iovec> iov, uint64_t offset);
[[nodiscard]] Status pread_full(int fd, void* buf, uint64_t len, uint64_t offset);
[[nodiscard]] Status pwrite_full(int fd, const void* buf, uint64_t len, uint64_t offset);

// Sum of the iovecs' lengths.
[[nodiscard]] uint64_t iov_bytes(std::span<const iovec> iov);

// The byte range [offset, offset + len) of an iovec list, as iovecs (into out).
void iov_slice(std::span<const iovec> iov, uint64_t offset, uint64_t len, std::vector<iovec>& out);

// Copies between an iovec list's range and a flat buffer.
void iov_to_buf(std::span<const iovec> iov, uint64_t offset, uint8_t* dst, uint64_t len);
void iov_zero(std::span<const iovec> iov, uint64_t offset, uint64_t len);

}  // namespace forkvm::storage
