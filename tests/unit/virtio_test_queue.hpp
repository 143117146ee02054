// The guest (driver) side of a split virtqueue, for tests and fuzzers: it
// writes descriptors and the available ring into a real GuestMemory and
// reads back the used ring, so devices run exactly as they would under a
// guest, minus KVM. Layout from `base`: descriptor table, available ring,
// used ring (4-aligned), then a bump allocator for data buffers.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <span>
#include <vector>

#include "devices/virtio/queue.hpp"
#include "vmm/guest_memory.hpp"
#include "vmm/interrupt.hpp"

namespace forkvm::virtio::testing {

struct Buf {
  uint64_t addr;
  uint32_t len;
  bool writable;
};

struct UsedElem {
  uint32_t id;
  uint32_t len;
};

class TestQueue {
 public:
  TestQueue(const GuestMemory& mem, uint64_t base, uint16_t size)
      : mem_(mem),
        size_(size),
        desc_(base),
        avail_(desc_ + uint64_t{16} * size),
        used_(align(avail_ + 6 + uint64_t{2} * size, 4)),
        next_data_(align(used_ + 6 + uint64_t{8} * size, 4096)) {}

  [[nodiscard]] uint16_t size() const { return size_; }
  [[nodiscard]] uint64_t desc_table() const { return desc_; }
  [[nodiscard]] uint64_t avail_ring() const { return avail_; }
  [[nodiscard]] uint64_t used_ring() const { return used_; }

  // What a driver writes through the transport's queue registers.
  void configure(Queue& q) const {
    q.set_size(size_);
    q.set_desc_table(desc_);
    q.set_avail_ring(avail_);
    q.set_used_ring(used_);
    q.set_ready(true);
  }

  // A data buffer of `len` bytes in guest memory (never reused).
  uint64_t alloc(uint64_t len, uint64_t alignment = 16) {
    const uint64_t a = align(next_data_, alignment);
    next_data_ = a + len;
    return a;
  }
  uint64_t alloc_bytes(std::span<const uint8_t> bytes) {
    const uint64_t a = alloc(bytes.size());
    (void)mem_.write(a, bytes);
    return a;
  }

  void set_desc(uint16_t index, const RawDescriptor& d) {
    (void)mem_.write_obj(desc_ + uint64_t{16} * index, d);
  }
  void set_desc(uint16_t index, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next) {
    set_desc(index, RawDescriptor{addr, len, flags, next});
  }

  // Writes `bufs` as one chain in the next free descriptors and publishes it.
  uint16_t add_chain(std::initializer_list<Buf> bufs) {
    return add_chain(std::span<const Buf>(bufs.begin(), bufs.size()));
  }
  uint16_t add_chain(std::span<const Buf> bufs) {
    const uint16_t head = next_desc_;
    for (size_t i = 0; i < bufs.size(); ++i) {
      const uint16_t index = static_cast<uint16_t>((head + i) % size_);
      const bool last = i + 1 == bufs.size();
      const uint16_t flags =
          static_cast<uint16_t>((bufs[i].writable ? kDescFlagWrite : 0) | (last ? 0 : kDescFlagNext));
      set_desc(index, bufs[i].addr, bufs[i].len, flags, static_cast<uint16_t>((index + 1) % size_));
    }
    next_desc_ = static_cast<uint16_t>((head + bufs.size()) % size_);
    publish(head);
    return head;
  }

  // Writes `bufs` as an indirect table in guest memory and publishes a chain
  // of one INDIRECT descriptor pointing at it.
  uint16_t add_indirect_chain(std::span<const Buf> bufs) {
    std::vector<RawDescriptor> table(bufs.size());
    for (size_t i = 0; i < bufs.size(); ++i) {
      const bool last = i + 1 == bufs.size();
      table[i] = {bufs[i].addr, bufs[i].len,
                  static_cast<uint16_t>((bufs[i].writable ? kDescFlagWrite : 0) | (last ? 0 : kDescFlagNext)),
                  static_cast<uint16_t>(i + 1)};
    }
    const uint64_t table_gpa =
        alloc_bytes({reinterpret_cast<const uint8_t*>(table.data()), table.size() * 16});
    const uint16_t head = next_desc_;
    set_desc(head, table_gpa, static_cast<uint32_t>(table.size() * 16), kDescFlagIndirect, 0);
    next_desc_ = static_cast<uint16_t>((head + 1) % size_);
    publish(head);
    return head;
  }

  // Puts `head` in the next available slot and bumps avail idx.
  void publish(uint16_t head) {
    (void)mem_.write_obj<uint16_t>(avail_ + 4 + uint64_t{2} * (avail_idx_ % size_), head);
    set_avail_idx(static_cast<uint16_t>(avail_idx_ + 1));
  }
  void set_avail_idx(uint16_t idx) {
    avail_idx_ = idx;
    (void)mem_.write_obj<uint16_t>(avail_ + 2, idx);
  }
  void set_avail_flags(uint16_t flags) { (void)mem_.write_obj<uint16_t>(avail_, flags); }
  void set_used_event(uint16_t v) { (void)mem_.write_obj<uint16_t>(avail_ + 4 + uint64_t{2} * size_, v); }

  [[nodiscard]] uint16_t used_idx() const { return mem_.read_obj<uint16_t>(used_ + 2).value_or(0); }
  [[nodiscard]] UsedElem used(uint16_t slot) const {
    return mem_.read_obj<UsedElem>(used_ + 4 + uint64_t{8} * (slot % size_)).value_or(UsedElem{~0u, ~0u});
  }
  [[nodiscard]] uint16_t avail_event() const {
    return mem_.read_obj<uint16_t>(used_ + 4 + uint64_t{8} * size_).value_or(0);
  }

 private:
  static uint64_t align(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

  const GuestMemory& mem_;
  uint16_t size_;
  uint64_t desc_;
  uint64_t avail_;
  uint64_t used_;
  uint64_t next_data_;
  uint16_t next_desc_ = 0;
  uint16_t avail_idx_ = 0;
};

// An InterruptLine that counts.
class CountingInterrupt final : public InterruptLine {
 public:
  void trigger() override { ++count; }
  int count = 0;
};

}  // namespace forkvm::virtio::testing
