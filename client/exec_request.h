// An exec job as a client sends it (docs/protocol.md, `exec`): what Pool::exec and the launcher
// (kiln exec) build, and its encoding. The client's form of proto::ExecRequest: an empty env or
// rlimits and a false clear_env are not sent, and the job's timeout travels beside the payload.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/protocol.h"

namespace kiln::client {

struct ExecRequest {
  std::vector<std::string> argv;
  std::optional<std::string> cwd;
  std::vector<std::pair<std::string, std::string>> env;
  bool clear_env = false;
  std::optional<std::string> stdin_data;
  std::optional<uint64_t> timeout_ms;
  // The process attributes the command should have (kiln exec sends its caller's): umask, nice
  // value, and resource limits by their protocol names ("nofile" -> {soft, hard}).
  std::optional<uint32_t> umask;
  std::optional<int> nice;
  std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>> rlimits;
};

// The payload of an exec job, encoded.
proto::RawObject exec_payload(const ExecRequest& request);

}  // namespace kiln::client
