// kiln-symbolize: prints the stack trace of a crashed kiln-worker, whose crash handler runs it
// with the worker's pid and the code addresses of its stack (worker/crash_handler.cc), on the
// worker's stderr. It exists so that libdw, its allocations and its megabyte of code stay out of
// every worker: a worker maps them only in this process, and only when it crashes.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/exit_codes.h"
#include "common/text.h"
#include "common/version.h"
#include "worker/symbolizer.h"

namespace {

constexpr const char kUsage[] =
    "usage: kiln-symbolize PID ADDRESS...\n"
    "Prints the function, file and line of each code ADDRESS (hexadecimal) of the live process\n"
    "PID, as kiln-worker's crash handler runs it to report a crash.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc == 2 && std::strcmp(argv[1], "--help") == 0) {
    std::fputs(kUsage, stdout);
    return kiln::exit_code::kOk;
  }
  if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
    std::printf("kiln-symbolize %.*s\n", static_cast<int>(kiln::kVersion.size()),
                kiln::kVersion.data());
    return kiln::exit_code::kOk;
  }
  const std::optional<uint64_t> pid =
      argc > 2 ? kiln::parse_unsigned(argv[1], 10, 1, INT32_MAX) : std::nullopt;
  std::vector<uint64_t> addresses;
  for (int i = 2; pid && i < argc; ++i) {
    const std::optional<uint64_t> address = kiln::parse_unsigned(argv[i], 16);
    if (!address) break;
    addresses.push_back(*address);
  }
  if (!pid || addresses.size() != static_cast<std::size_t>(argc - 2)) {
    std::fputs(kUsage, stderr);
    return kiln::exit_code::kUsage;
  }
  ::unsetenv("DEBUGINFOD_URLS");  // a crash report never waits for the network
  const std::vector<std::string> lines =
      kiln::worker::symbolize(static_cast<pid_t>(*pid), addresses);
  if (lines.empty()) {
    std::fprintf(stderr, "kiln-symbolize: cannot read the modules of pid %s\n", argv[1]);
    return kiln::exit_code::kUsage;
  }
  std::printf("Stack trace (most recent call first):\n");
  for (const std::string& line : lines) std::printf("%s\n", line.c_str());
  return kiln::exit_code::kOk;
}
