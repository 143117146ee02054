// Guest images: a directory holding a kernel (vmlinux) and a root filesystem
// (rootfs.ext4), found by name under the images root. tools/guest/artifacts
// image makes "default" from the cached kernel and Debian image.
#pragma once

#include <string>

#include "vmm/result.hpp"

namespace forkvm::engine {

struct GuestImage {
  std::string name;
  std::string kernel;  // vmlinux
  std::string rootfs;  // ext4, mounted read-write as /dev/vda: boot a private copy
  // Systemd needs a writable root; the agent prints its marker on the console.
  std::string cmdline = "root=/dev/vda rw";
};

// $FORKVM_IMAGES, else ${FORKVM_CACHE:-/var/cache/forkvm}/images.
[[nodiscard]] std::string images_root();

// `name` is an image name (letters, digits, '-', '_', '.') under images_root(),
// or a path to an image directory.
[[nodiscard]] Result<GuestImage> find_image(const std::string& name);

// Copies `from` to a new file `to`, leaving holes where `from` has holes or
// all-zero 4 KiB blocks: a 2 GiB image with 300 MiB of data costs 300 MiB.
// `to` must not exist; on failure it is removed.
[[nodiscard]] Status copy_sparse(const std::string& from, const std::string& to);

}  // namespace forkvm::engine
