// A warm tool as kiln-supervisor's --tool NAME=COMMAND names it (docs/protocol.md "Tool link");
// the supervisor checks each at start-up and passes it on to its workers as it came.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace kiln {

// The most tools one pool runs (each worker runs one process of each).
inline constexpr std::size_t kMaxTools = 16;

struct ToolSpec {
  std::string name;
  std::vector<std::string> argv;
};

// "NAME=COMMAND": NAME is [a-z][a-z0-9_.-]* (at most 64 characters) and not a built-in kind;
// COMMAND is split into argv as a POSIX shell would (common/shell_split.h), never run by one.
// An error starts with the tool's name ("Py: a tool's name is ...").
Expected<ToolSpec> parse_tool_spec(std::string_view spec);

// Every --tool of one command line: each valid, no name twice, at most kMaxTools.
Expected<std::vector<ToolSpec>> parse_tool_specs(const std::vector<std::string>& specs);

}  // namespace kiln
