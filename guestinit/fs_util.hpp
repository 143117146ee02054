// Filesystem helpers for the file ops: errno to protocol error codes, and
// the recursive operations (mkdir -p, rm -r) written against *at() calls so
// a symlink inside a tree being removed is unlinked, never followed.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "vmm/result.hpp"

namespace forkvm::agent {

std::string_view errno_code(int err);
// "file", "directory", "symlink" or "other", from st_mode.
std::string_view kind_name(mode_t mode);
// mkdir -p; returns 0 or an errno.
int make_dirs(const std::string& path, mode_t mode);
// rm -r of path (a file, symlink or directory); returns 0 or an errno.
int remove_tree(const std::string& path);
// The directory part of path ("." when none); "/" stays "/".
std::string parent_dir(const std::string& path);
std::string base_name(const std::string& path);
// Replaces path with content as one step: a temp file beside it, fsync,
// rename, directory fsync. Readers see the old file or the new, never half.
Status write_file_atomic(const std::string& path, std::string_view content, mode_t mode);

}  // namespace forkvm::agent
