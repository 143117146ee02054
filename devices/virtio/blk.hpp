// virtio-blk (device id 2) over a BlkBackend (blk_backend.hpp). For a raw
// file or block device the I/O goes through io_uring: one ring per disk;
// each request's guest buffers are the iovecs of one readv/writev
// (zero-copy), submitted in a batch per notification. Backends without a
// direct fd (the layered copy-on-write disk) do their own I/O, which runs
// on a worker thread (blk_worker.hpp), never on the event thread. Either
// way completions are signalled on an eventfd the event loop watches
// (event_fd() / process_event()). Tests drive it synchronously:
// process_queue() submits, wait_idle() reaps everything.
#pragma once

#include <liburing.h>
#include <sys/uio.h>

#include <array>
#include <memory>
#include <string>
#include <vector>

#include "devices/virtio/blk_backend.hpp"
#include "devices/virtio/blk_request.hpp"
#include "devices/virtio/blk_worker.hpp"
#include "devices/virtio/device.hpp"
#include "vmm/unique_fd.hpp"

namespace forkvm::virtio {

struct BlkConfig {
  std::string path;
  bool read_only = false;
  std::string id;  // GET_ID string (20 bytes used); empty: the file's name
};

inline constexpr uint32_t kBlkDeviceId = 2;
inline constexpr unsigned kBlkFeatureSizeMax = 1;
inline constexpr unsigned kBlkFeatureSegMax = 2;
inline constexpr unsigned kBlkFeatureRo = 5;
inline constexpr unsigned kBlkFeatureFlush = 9;

class Blk final : public Device {
 public:
  static constexpr uint16_t kQueueMaxSize = 256;
  // Two descriptors of a request are the header and the status byte.
  static constexpr uint32_t kSegMax = kQueueMaxSize - 2;
  static constexpr uint32_t kSizeMax = 1U << 20;

  // A raw file or block device (RawFileBackend).
  static Result<std::shared_ptr<Blk>> create(const BlkConfig& config);
  // Any backend; an empty id means the backend's name().
  static Result<std::shared_ptr<Blk>> create(std::unique_ptr<BlkBackend> backend, const std::string& id);
  ~Blk() override;

  [[nodiscard]] uint32_t device_id() const override { return kBlkDeviceId; }
  [[nodiscard]] uint64_t device_features() const override;
  void process_queue(uint16_t index) override;
  [[nodiscard]] int event_fd() const override { return event_fd_.get(); }
  void process_event() override;

  // Blocks until every submitted request has completed and is in the used
  // ring. For tests and fuzzers; the machine uses process_event().
  [[nodiscard]] Status wait_idle();
  [[nodiscard]] uint64_t capacity_sectors() const { return limits_.capacity_sectors; }
  // The backend's size changed (a disk grown online): takes the new
  // capacity and tells the driver with a configuration-change interrupt,
  // on which Linux re-reads it. Event thread, with the vCPUs paused (they
  // read the configuration space).
  void capacity_changed();
  [[nodiscard]] size_t in_flight() const { return in_flight_; }

 private:
  // One submitted request; its index is the SQE's user_data.
  struct Slot {
    std::vector<iovec> iov;
    uint8_t* status = nullptr;
    uint64_t expected = 0;  // bytes the read/write must transfer
    uint32_t used_len = 0;  // what the used ring reports on success
    uint16_t head = 0;
    bool busy = false;
  };

  Blk(std::unique_ptr<BlkBackend> backend, UniqueFd event_fd, const std::string& id);
  [[nodiscard]] std::span<const uint8_t> config_space() const override { return config_; }
  [[nodiscard]] Status do_activate() override { return {}; }
  void do_reset() override;
  // Snapshot: finish every in-flight request into the used ring first, so
  // the saved ring positions are final and no I/O targets the old memory.
  [[nodiscard]] Status prepare_save() override;

  // Handles one chain; false if the ring had no room (put the chain back).
  bool handle_chain(DescriptorChain& chain);
  bool submit(const blk::Request& req, uint16_t head);
  void complete(uint16_t head, uint32_t len);
  void reap(bool publish);
  void finish_slot(uint32_t index, bool ok, bool publish);
  [[nodiscard]] Status wait_some();
  void drain(bool publish);
  void finish_batch();

  std::unique_ptr<BlkBackend> backend_;
  int disk_fd_ = -1;  // backend_->direct_fd(): io_uring path when >= 0
  UniqueFd event_fd_;
  io_uring ring_{};
  bool ring_ready_ = false;
  blk::DiskLimits limits_;
  std::array<uint8_t, blk::kIdBytes> id_{};
  std::array<uint8_t, 60> config_{};  // struct virtio_blk_config up to the discard fields
  std::vector<Slot> slots_;
  std::vector<uint32_t> free_slots_;
  size_t in_flight_ = 0;
  unsigned unsubmitted_ = 0;
  bool used_added_ = false;
  bool deferred_ = false;          // chains left in the ring for want of a free slot
  std::vector<Descriptor> chain_;  // scratch, reused across requests
  std::vector<BlkWorker::Done> done_;  // scratch for reap()
  std::unique_ptr<BlkWorker> worker_;  // backends without a direct fd; last, so it stops first
};

}  // namespace forkvm::virtio
