// The split virtqueue (virtio 1.2 section 2.7), device side. Everything in
// the rings is written by the guest, so every index, address and length is
// checked before use; a problem comes back as an Error value. Errors from
// pop() and add_used() mean the ring itself is broken (the device should set
// DEVICE_NEEDS_RESET); errors from DescriptorChain::next() concern one chain
// (the device completes that head with length 0 and carries on).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "vmm/guest_memory.hpp"
#include "vmm/result.hpp"
#include "vmm/state_codec.hpp"

namespace forkvm::virtio {

inline constexpr uint16_t kDescFlagNext = 1;
inline constexpr uint16_t kDescFlagWrite = 2;
inline constexpr uint16_t kDescFlagIndirect = 4;
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;

// Largest indirect table we walk (entries). Linux sizes indirect tables by the
// request's segment count, which the device bounds with seg_max; 1024 is
// IOV_MAX and far above any seg_max we offer.
inline constexpr uint32_t kMaxIndirectEntries = 1024;

// struct virtq_desc as the guest lays it out (little-endian host assumed: x86).
struct RawDescriptor {
  uint64_t addr;
  uint32_t len;
  uint16_t flags;
  uint16_t next;
};
static_assert(sizeof(RawDescriptor) == 16);

// One buffer of a chain, already bounds-checked: a host view of guest memory.
struct Descriptor {
  std::span<uint8_t> data;
  bool writable = false;  // VIRTQ_DESC_F_WRITE: the device may write it
};

// Walks one chain lazily and without copying buffers. Each descriptor is
// copied out of guest memory once and checked on the copy, so a guest
// rewriting the table concurrently cannot change what was checked.
class DescriptorChain {
 public:
  [[nodiscard]] uint16_t head() const { return head_; }

  // The next descriptor, std::nullopt after the last, or why the chain is bad.
  [[nodiscard]] Result<std::optional<Descriptor>> next();

  // Appends the rest of the chain to `out` (cleared first).
  [[nodiscard]] Status collect(std::vector<Descriptor>& out);

 private:
  friend class Queue;
  DescriptorChain(const GuestMemory* mem, const uint8_t* table, uint32_t table_len, uint16_t head)
      : mem_(mem), table_(table), table_len_(table_len), next_index_(head), ttl_(table_len), head_(head) {}

  const GuestMemory* mem_;
  const uint8_t* table_;  // the queue's descriptor table, or the indirect table
  uint32_t table_len_;    // entries in table_
  uint32_t next_index_;
  uint32_t ttl_;  // descriptors left in this table before we call it a loop
  uint16_t head_;
  bool in_indirect_ = false;
  bool done_ = false;
};

class Queue {
 public:
  explicit Queue(uint16_t max_size);

  // Driver-side configuration, written by the transport before activation.
  [[nodiscard]] uint16_t max_size() const { return max_size_; }
  [[nodiscard]] uint16_t size() const { return size_; }
  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] uint64_t desc_table() const { return desc_addr_; }
  [[nodiscard]] uint64_t avail_ring() const { return avail_addr_; }
  [[nodiscard]] uint64_t used_ring() const { return used_addr_; }
  void set_size(uint16_t size) { size_ = size; }
  void set_ready(bool ready) { ready_ = ready; }
  void set_desc_table(uint64_t gpa) { desc_addr_ = gpa; }
  void set_avail_ring(uint64_t gpa) { avail_addr_ = gpa; }
  void set_used_ring(uint64_t gpa) { used_addr_ = gpa; }
  void set_event_idx(bool enabled) { event_idx_ = enabled; }
  [[nodiscard]] bool is_valid_size(uint16_t size) const;

  // Checks size, alignment and that all three rings lie wholly in guest RAM,
  // then caches their host addresses. Called once, at DRIVER_OK.
  [[nodiscard]] Status activate(const GuestMemory& mem);
  [[nodiscard]] bool active() const { return mem_ != nullptr; }

  // The next available chain, std::nullopt when the ring is empty, or an
  // error when the ring is broken (after which every call fails).
  [[nodiscard]] Result<std::optional<DescriptorChain>> pop();
  // Gives back the chain pop() returned last (the device could not take it yet).
  void undo_pop() { --next_avail_; }
  // With EVENT_IDX: asks the driver to notify when it publishes one more
  // chain than it has now (pop() asks this only when the ring runs dry).
  void notify_on_next_avail();

  // Publishes a completed chain in the used ring.
  [[nodiscard]] Status add_used(uint16_t head, uint32_t len);

  // Whether the driver wants an interrupt for what add_used() published since
  // the last call (VIRTQ_AVAIL_F_NO_INTERRUPT, or used_event with EVENT_IDX).
  [[nodiscard]] bool needs_notification();

  // Back to the state after construction (driver wrote 0 to Status).
  void reset();

  [[nodiscard]] uint16_t next_avail() const { return next_avail_; }
  [[nodiscard]] uint16_t next_used() const { return next_used_; }
  // The driver's avail idx as it is in guest memory now (untrusted: compare
  // it, never index with it). Only while active().
  [[nodiscard]] uint16_t avail_idx() const;

  // Snapshot: the driver's configuration and the device's ring positions.
  // load_state() leaves the queue inactive; the device re-activates it
  // against the restored guest memory (which re-checks every address).
  void save_state(StateWriter& out) const;
  [[nodiscard]] Status load_state(StateReader& in);

 private:
  uint16_t max_size_;
  uint16_t size_;
  bool ready_ = false;
  bool event_idx_ = false;
  uint64_t desc_addr_ = 0;
  uint64_t avail_addr_ = 0;
  uint64_t used_addr_ = 0;

  // Valid while active.
  const GuestMemory* mem_ = nullptr;
  uint8_t* desc_ = nullptr;
  uint8_t* avail_ = nullptr;
  uint8_t* used_ = nullptr;
  bool broken_ = false;

  uint16_t next_avail_ = 0;  // next avail ring slot to take (free-running)
  uint16_t next_used_ = 0;   // next used ring slot to fill (free-running)
  uint32_t num_added_ = 0;   // used entries published since needs_notification()
};

}  // namespace forkvm::virtio
