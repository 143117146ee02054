// The layered copy-on-write disk as a virtio-blk backend. The disk is
// shared so that the machine (or the API engine) can keep a handle to
// freeze it for a fork or snapshot; that must happen with the device quiet
// (no request in flight on its worker: Blk::wait_idle(), or the drain that
// comes with saving its state).
#pragma once

#include <memory>

#include "devices/storage/layered_disk.hpp"
#include "devices/virtio/blk_backend.hpp"

namespace forkvm::storage {

class LayeredBlkBackend final : public virtio::BlkBackend {
 public:
  explicit LayeredBlkBackend(std::shared_ptr<LayeredDisk> disk) : disk_(std::move(disk)) {}

  [[nodiscard]] uint64_t size_bytes() const override { return disk_->size(); }
  [[nodiscard]] bool read_only() const override { return disk_->read_only(); }
  [[nodiscard]] std::string name() const override;
  // No direct fd: the device calls these on its worker thread.
  [[nodiscard]] Status read(uint64_t offset, std::span<const iovec> iov) override {
    return disk_->read(offset, iov);
  }
  [[nodiscard]] Status write(uint64_t offset, std::span<const iovec> iov) override {
    return disk_->write(offset, iov);
  }
  [[nodiscard]] Status flush() override { return disk_->flush(); }

  [[nodiscard]] const std::shared_ptr<LayeredDisk>& disk() const { return disk_; }

 private:
  std::shared_ptr<LayeredDisk> disk_;
};

}  // namespace forkvm::storage
