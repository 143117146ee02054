// forkvm bench api: the API's latencies through HTTP (being written).
#include <cstdio>

#include "api/cli/bench_common.hpp"

namespace forkvm::cli {

int bench_api(const std::vector<std::string>& /*argv*/) {
  std::fputs("forkvm bench api: not implemented yet\n", stderr);
  return 1;
}

}  // namespace forkvm::cli
