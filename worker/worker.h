// kiln-worker: launched only by kiln-supervisor; makes itself safe, then serves jobs over its
// link (docs/design.md "Processes", docs/protocol.md "Worker link").
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/frame.h"

namespace kiln::worker {

struct Options {
  pid_t parent = 0;
  int read_fd = -1;
  int write_fd = -1;
  uint32_t max_frame = kDefaultMaxFrame;
  uint32_t grace_ms = 2000;
  bool enable_selftest = false;
  std::vector<std::string> tools;    // NAME=COMMAND, as kiln-supervisor's --tool
  std::vector<std::string> zygotes;  // NAME=ADDRESS: tool NAME is forked from that zygote
  std::string log_level;
  // A distcc host's slot (from KILN_DISTCC_HOST and KILN_DISTCC, which the supervisor sets and
  // main() takes out of the environment): compiles distcc can distribute run on that host.
  std::string distcc_host;
  std::string distcc_client;
};

// Start-up in docs/design.md's order, then the serve loop. Returns the exit status.
int run(const Options& options);

}  // namespace kiln::worker
