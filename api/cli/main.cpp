// forkvm: one binary, subcommands. Each subcommand lives in its own file.
#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fprintf(stderr, "usage: forkvm <command> [args]\n");
    return argc < 2 ? 2 : 0;
  }
  std::fprintf(stderr, "forkvm: unknown command '%s'\n", argv[1]);
  return 2;
}
