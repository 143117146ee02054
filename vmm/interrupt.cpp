#include "vmm/interrupt.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

namespace forkvm {

Result<EventFdInterrupt> EventFdInterrupt::create(uint32_t gsi) {
  int fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (fd < 0) return errno_error("eventfd for interrupt");
  return EventFdInterrupt(UniqueFd(fd), gsi);
}

void EventFdInterrupt::trigger() {
  uint64_t one = 1;
  // EAGAIN means the counter is saturated: an interrupt is already pending.
  (void)!::write(fd_.get(), &one, sizeof(one));
}

}  // namespace forkvm
