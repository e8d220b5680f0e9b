// kiln: placeholder entry point until its issue lands; --help and --version work.
#include <CLI/CLI.hpp>

#include "common/version.h"

int main(int argc, char** argv) {
  CLI::App app{"kiln"};
  app.set_version_flag("--version", "kiln " + std::string(kiln::kVersion));
  CLI11_PARSE(app, argc, argv);
  return 0;
}
