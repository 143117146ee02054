// A VMM that was killed (SIGKILL, or it crashed) never tore down its network
// (devices/net/host_network.cpp): its netns, which takes the veth pair with
// it, and its host nft table stay and would refuse the next VM on that slot.
#pragma once

#include <cstdint>
#include <string_view>

namespace forkvm::engine {

// Removes what is left on `slot`; nothing to do when the VMM cleaned up
// itself. Call it only while the slot is still held for the dead VMM's VM,
// or held by nobody: never for a slot another VM runs on.
// `what` says whose network it was, for the log.
void remove_leftover_network(uint32_t slot, std::string_view what = "a killed VMM left");

}  // namespace forkvm::engine
