#include "api/serve/unavailable_engine.hpp"

namespace forkvm::api {

std::unique_ptr<VmEngine> make_unavailable_engine(std::string reason) {
  return std::make_unique<UnavailableEngine>(std::move(reason));
}

}  // namespace forkvm::api
