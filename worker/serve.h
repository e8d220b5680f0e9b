#pragma once

#include <string>
#include <vector>

#include "worker/jobs.h"

namespace kiln::worker {

// The kinds this worker serves, for `ready`.
std::vector<std::string> served_kinds(bool selftest);

// Serves jobs until `shutdown` or end of input (exit_code::kOk), or a protocol error from the
// supervisor (exit_code::kProtocolError). Returns the exit status.
int serve(JobContext& context);

}  // namespace kiln::worker
