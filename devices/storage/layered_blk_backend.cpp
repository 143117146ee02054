#include "devices/storage/layered_blk_backend.hpp"

#include <filesystem>

namespace forkvm::storage {

// The chain's directory names the disk better than the descriptor's file name ("chain").
std::string LayeredBlkBackend::name() const {
  return std::filesystem::path(disk_->chain_path()).parent_path().filename().string();
}

}  // namespace forkvm::storage
