#include "devices/virtio/queue.hpp"

#include <atomic>
#include <cstring>

namespace forkvm::virtio {
namespace {

// Ring layout (virtio 1.2, 2.7.6 and 2.7.8): avail = flags, idx, ring[size],
// used_event; used = flags, idx, ring[size] of {id, len}, avail_event.
constexpr uint64_t kRingHeader = 4;
constexpr uint64_t kUsedElemSize = 8;

uint64_t desc_table_bytes(uint16_t size) { return uint64_t{16} * size; }
uint64_t avail_ring_bytes(uint16_t size) { return kRingHeader + uint64_t{2} * size + 2; }
uint64_t used_ring_bytes(uint16_t size) { return kRingHeader + kUsedElemSize * size + 2; }

// The 16-bit ring fields the guest updates concurrently are accessed as
// atomics so neither the compiler nor the CPU tears or caches them. activate()
// checked that they are 2-aligned in guest-physical space, and guest RAM is
// mapped page-aligned, so the host addresses are 2-aligned too.
uint16_t load_u16(uint8_t* p) {
  return std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).load(std::memory_order_relaxed);
}
void store_u16(uint8_t* p, uint16_t v) {
  std::atomic_ref<uint16_t>(*reinterpret_cast<uint16_t*>(p)).store(v, std::memory_order_relaxed);
}

}  // namespace

Result<std::optional<Descriptor>> DescriptorChain::next() {
  if (done_) return std::optional<Descriptor>{};
  // Any error ends the walk: a chain is either wholly good or refused.
  done_ = true;
  if (next_index_ >= table_len_) {
    return make_error("descriptor index {} is outside a table of {} entries", next_index_, table_len_);
  }
  if (ttl_ == 0) return make_error("descriptor chain from head {} is longer than its table (a loop)", head_);
  --ttl_;

  RawDescriptor d;
  std::memcpy(&d, table_ + sizeof(RawDescriptor) * next_index_, sizeof d);

  if ((d.flags & kDescFlagIndirect) != 0) {
    if (in_indirect_) return make_error("indirect descriptor inside an indirect table (head {})", head_);
    // The spec forbids INDIRECT with NEXT, so an indirect table ends the chain.
    if ((d.flags & kDescFlagNext) != 0)
      return make_error("indirect descriptor also has NEXT (head {})", head_);
    if (d.len == 0 || d.len % sizeof(RawDescriptor) != 0 ||
        d.len / sizeof(RawDescriptor) > kMaxIndirectEntries) {
      return make_error("indirect table length {} is not 1..{} descriptors (head {})", d.len,
                        kMaxIndirectEntries, head_);
    }
    const uint8_t* table = mem_->host_ptr(d.addr, d.len);
    if (table == nullptr) {
      return make_error("indirect table [{:#x}, +{:#x}) is outside guest memory (head {})", d.addr, d.len,
                        head_);
    }
    table_ = table;
    table_len_ = d.len / static_cast<uint32_t>(sizeof(RawDescriptor));
    ttl_ = table_len_;
    next_index_ = 0;
    in_indirect_ = true;
    done_ = false;
    return next();
  }

  if (d.len == 0) return make_error("zero-length descriptor in chain from head {}", head_);
  // host_ptr refuses ranges that wrap or leave RAM, so addr + len cannot overflow here.
  uint8_t* host = mem_->host_ptr(d.addr, d.len);
  if (host == nullptr) {
    return make_error("descriptor buffer [{:#x}, +{:#x}) is outside guest memory (head {})", d.addr, d.len,
                      head_);
  }
  if ((d.flags & kDescFlagNext) != 0) {
    next_index_ = d.next;
    done_ = false;
  }
  return std::optional<Descriptor>{Descriptor{{host, d.len}, (d.flags & kDescFlagWrite) != 0}};
}

Status DescriptorChain::collect(std::vector<Descriptor>& out) {
  out.clear();
  for (;;) {
    auto d = next();
    if (!d.ok()) return d.error();
    if (!d->has_value()) return {};
    out.push_back(**d);
  }
}

Queue::Queue(uint16_t max_size) : max_size_(max_size), size_(max_size) {}

bool Queue::is_valid_size(uint16_t size) const {
  return size != 0 && size <= max_size_ && (size & (size - 1)) == 0;
}

Status Queue::activate(const GuestMemory& mem) {
  if (!ready_) return make_error("queue is not ready");
  if (!is_valid_size(size_))
    return make_error("queue size {} is not a power of two in 1..{}", size_, max_size_);
  // Alignment from virtio 1.2 2.7: also what makes the 16-bit atomics legal.
  if (desc_addr_ % 16 != 0) return make_error("descriptor table {:#x} is not 16-byte aligned", desc_addr_);
  if (avail_addr_ % 2 != 0) return make_error("available ring {:#x} is not 2-byte aligned", avail_addr_);
  if (used_addr_ % 4 != 0) return make_error("used ring {:#x} is not 4-byte aligned", used_addr_);
  uint8_t* desc = mem.host_ptr(desc_addr_, desc_table_bytes(size_));
  uint8_t* avail = mem.host_ptr(avail_addr_, avail_ring_bytes(size_));
  uint8_t* used = mem.host_ptr(used_addr_, used_ring_bytes(size_));
  if (desc == nullptr)
    return make_error("descriptor table at {:#x} is not wholly in guest memory", desc_addr_);
  if (avail == nullptr)
    return make_error("available ring at {:#x} is not wholly in guest memory", avail_addr_);
  if (used == nullptr) return make_error("used ring at {:#x} is not wholly in guest memory", used_addr_);
  mem_ = &mem;
  desc_ = desc;
  avail_ = avail;
  used_ = used;
  return {};
}

uint16_t Queue::avail_idx() const { return load_u16(avail_ + 2); }

void Queue::notify_on_next_avail() {
  if (!active() || !event_idx_) return;
  store_u16(used_ + kRingHeader + kUsedElemSize * size_, avail_idx());
  std::atomic_thread_fence(std::memory_order_seq_cst);  // as in pop(): before the driver's next idx store
}

Result<std::optional<DescriptorChain>> Queue::pop() {
  if (!active()) return make_error("queue is not active");
  if (broken_) return make_error("queue is broken and needs a reset");

  uint16_t idx = avail_idx();
  if (idx == next_avail_ && event_idx_) {
    // Going idle: ask for a notification when the driver publishes slot
    // next_avail_ (avail_event, 2.7.10).
    store_u16(used_ + kRingHeader + kUsedElemSize * size_, next_avail_);
    // Full fence: orders the avail_event store before the re-read of avail
    // idx. It pairs with the driver's full barrier between its idx store and
    // its avail_event load, so either we see the new entry or it notifies us.
    std::atomic_thread_fence(std::memory_order_seq_cst);
    idx = avail_idx();
  }
  // Acquire: orders the avail idx load before the loads of the ring entry and
  // descriptors the driver published with it (pairs with its write barrier
  // before the idx store).
  std::atomic_thread_fence(std::memory_order_acquire);

  const auto pending = static_cast<uint16_t>(idx - next_avail_);
  if (pending == 0) return std::optional<DescriptorChain>{};
  if (pending > size_) {
    broken_ = true;
    return make_error("available index {} is {} entries ahead of {} in a queue of {}", idx, pending,
                      next_avail_, size_);
  }
  uint16_t head;
  std::memcpy(&head, avail_ + kRingHeader + uint64_t{2} * (next_avail_ % size_), sizeof head);
  if (head >= size_) {
    broken_ = true;
    return make_error("available ring offers head {} in a queue of {}", head, size_);
  }
  ++next_avail_;
  return std::optional<DescriptorChain>{DescriptorChain(mem_, desc_, size_, head)};
}

Status Queue::add_used(uint16_t head, uint32_t len) {
  if (!active()) return make_error("queue is not active");
  if (head >= size_) return make_error("used head {} is outside a queue of {}", head, size_);
  const uint32_t elem[2] = {head, len};
  std::memcpy(used_ + kRingHeader + kUsedElemSize * (next_used_ % size_), elem, sizeof elem);
  ++next_used_;
  // Release: orders the used element store above before the used idx store
  // that publishes it (pairs with the driver's read barrier after it loads idx).
  std::atomic_thread_fence(std::memory_order_release);
  store_u16(used_ + 2, next_used_);
  ++num_added_;
  return {};
}

bool Queue::needs_notification() {
  if (!active() || num_added_ == 0) return false;
  const uint32_t added = num_added_;
  num_added_ = 0;
  // Full fence: orders the used idx store (add_used) before the load of the
  // driver's suppression field below. Pairs with the driver's full barrier
  // between writing used_event/flags and re-reading used idx: without it both
  // sides could miss each other's update and the interrupt would be lost.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!event_idx_) return (load_u16(avail_) & kAvailFlagNoInterrupt) == 0;
  if (added > 0xffff) return true;  // wrapped: the driver's event index was certainly passed
  const uint16_t used_event = load_u16(avail_ + kRingHeader + uint64_t{2} * size_);
  const uint16_t now = next_used_;
  const auto old = static_cast<uint16_t>(now - added);
  // vring_need_event(): notify when used_event lies in [old, now).
  return static_cast<uint16_t>(now - used_event - 1) < static_cast<uint16_t>(now - old);
}

void Queue::reset() { *this = Queue(max_size_); }

void Queue::save_state(StateWriter& out) const {
  out.u16(size_);
  out.boolean(ready_);
  out.boolean(event_idx_);
  out.u64(desc_addr_);
  out.u64(avail_addr_);
  out.u64(used_addr_);
  out.u16(next_avail_);
  out.u16(next_used_);
  out.boolean(broken_);
}

Status Queue::load_state(StateReader& in) {
  reset();
  const uint16_t size = FORKVM_TRY(in.u16());
  // Size 0 is what a refused QueueNum write leaves; anything else must fit.
  if (size > max_size_)
    return make_error("state of {}: queue size {} above the maximum {}", in.what(), size, max_size_);
  size_ = size;
  ready_ = FORKVM_TRY(in.boolean());
  event_idx_ = FORKVM_TRY(in.boolean());
  desc_addr_ = FORKVM_TRY(in.u64());
  avail_addr_ = FORKVM_TRY(in.u64());
  used_addr_ = FORKVM_TRY(in.u64());
  next_avail_ = FORKVM_TRY(in.u16());
  next_used_ = FORKVM_TRY(in.u16());
  broken_ = FORKVM_TRY(in.boolean());
  return {};
}

}  // namespace forkvm::virtio
