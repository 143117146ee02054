// The API's subcommands of the forkvm binary (api/cli/main.cpp dispatches).
#pragma once

#include <string>
#include <vector>

namespace forkvm::cli {

int serve_command(const std::vector<std::string>& args);  // api/cli/serve_command.cpp
int keys_command(const std::vector<std::string>& args);   // api/cli/keys_command.cpp

}  // namespace forkvm::cli
