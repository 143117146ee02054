// forkvm bench fork|restore|suspend (being written).
#include <cstdio>

#include "api/cli/bench_common.hpp"

namespace forkvm::cli {

namespace {
int not_yet(const char* mode) {
  std::fprintf(stderr, "forkvm bench %s: not implemented yet\n", mode);
  return 1;
}
}  // namespace

int bench_fork(const std::vector<std::string>& /*argv*/) { return not_yet("fork"); }
int bench_restore(const std::vector<std::string>& /*argv*/) { return not_yet("restore"); }
int bench_suspend(const std::vector<std::string>& /*argv*/) { return not_yet("suspend"); }

}  // namespace forkvm::cli
