// What a job is called where people look at a pool (stats' running jobs, kiln top, the --trace
// timeline): for exec, the basename of its first argument that looks like a source file
// (a.c, lib/b.cpp -> b.cpp), else of its command (argv[0]); for other kinds, the kind.
#pragma once

#include <string>
#include <vector>

#include "common/protocol.h"

namespace kiln::supervisor {

// `payload` is a client's: it is decoded within bounds, and one that does not decode is named
// after its kind.
std::string job_name(const std::string& kind, const proto::RawObject& payload);

// The argv of an exec payload, decoded within the same bounds; empty when it has none.
std::vector<std::string> exec_argv(const proto::RawObject& payload);

}  // namespace kiln::supervisor
