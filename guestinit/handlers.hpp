// The request dispatcher: maps a request's "op" to its handler.
#pragma once

#include "guestinit/json.hpp"

namespace forkvm::agent {

class Stream;

// Runs one request to completion on the calling thread; always ends the stream.
void dispatch(Stream& s, const JsonValue& req);

}  // namespace forkvm::agent
