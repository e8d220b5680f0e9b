// The process resource limits an exec job may carry (docs/protocol.md, `exec`'s `rlimits`), by
// the names the protocol gives them: `kiln exec` sends the caller's, the worker's child sets them.
#pragma once

#include <sys/resource.h>

#include <optional>
#include <string_view>

namespace kiln {

struct RlimitName {
  std::string_view name;
  int resource;
};

inline constexpr RlimitName kRlimits[] = {
    {"as", RLIMIT_AS},           {"core", RLIMIT_CORE},         {"cpu", RLIMIT_CPU},
    {"data", RLIMIT_DATA},       {"fsize", RLIMIT_FSIZE},       {"locks", RLIMIT_LOCKS},
    {"memlock", RLIMIT_MEMLOCK}, {"msgqueue", RLIMIT_MSGQUEUE}, {"nice", RLIMIT_NICE},
    {"nofile", RLIMIT_NOFILE},   {"nproc", RLIMIT_NPROC},       {"rss", RLIMIT_RSS},
    {"rtprio", RLIMIT_RTPRIO},   {"rttime", RLIMIT_RTTIME},     {"sigpending", RLIMIT_SIGPENDING},
    {"stack", RLIMIT_STACK},
};

inline std::optional<int> rlimit_resource(std::string_view name) {
  for (const RlimitName& r : kRlimits) {
    if (r.name == name) return r.resource;
  }
  return std::nullopt;
}

}  // namespace kiln
