// The forkvm subcommands. Each returns the process exit status.
#pragma once

#include <string>
#include <vector>

namespace forkvm::cli {

// Exit status for bad command-line input, before any VM exists.
inline constexpr int kUsageError = 2;

int run_command(const std::vector<std::string>& args);
int bench_command(const std::vector<std::string>& args);
int guest_command(const std::vector<std::string>& args);
int disk_command(const std::vector<std::string>& args);
int restore_command(const std::vector<std::string>& args);
int snapshot_command(const std::vector<std::string>& args);
int control_command(const std::vector<std::string>& args);
int vm_command(const std::vector<std::string>& args);  // api/cli/vm_command.cpp

}  // namespace forkvm::cli
