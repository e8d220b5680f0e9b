#include "common/tool_spec.h"

#include <algorithm>
#include <iterator>

#include "common/protocol.h"
#include "common/shell_split.h"
#include "common/text.h"

namespace kiln {
namespace {

bool valid_tool_name(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] < 'a' || name[0] > 'z') return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
  });
}

}  // namespace

Expected<ToolSpec> parse_tool_spec(std::string_view spec) {
  const auto eq = spec.find('=');
  if (eq == std::string_view::npos) {
    return fail(printable(spec, 80) + ": expected NAME=COMMAND");
  }
  ToolSpec t;
  t.name = std::string(spec.substr(0, eq));
  if (!valid_tool_name(t.name)) {
    return fail(printable(t.name, 80) +
                ": a tool's name is [a-z][a-z0-9_.-]*, at most 64 characters");
  }
  if (std::find(std::begin(proto::kBuiltinKinds), std::end(proto::kBuiltinKinds), t.name) !=
      std::end(proto::kBuiltinKinds)) {
    return fail(t.name + ": that is a built-in job kind");
  }
  Expected<std::vector<std::string>> argv = shell_split(spec.substr(eq + 1));
  if (!argv) return fail(t.name + ": " + argv.error());
  if (argv->empty() || (*argv)[0].empty()) return fail(t.name + ": no command");
  for (const std::string& a : *argv) {
    if (a.find('\0') != std::string::npos) {
      return fail(t.name + ": the command contains a NUL byte");
    }
  }
  t.argv = std::move(*argv);
  return t;
}

Expected<std::vector<ToolSpec>> parse_tool_specs(const std::vector<std::string>& specs) {
  if (specs.size() > kMaxTools) {
    return fail("--tool: at most " + std::to_string(kMaxTools) + " tools, got " +
                std::to_string(specs.size()));
  }
  std::vector<ToolSpec> tools;
  for (const std::string& s : specs) {
    Expected<ToolSpec> t = parse_tool_spec(s);
    if (!t) return fail("--tool " + t.error());
    for (const ToolSpec& earlier : tools) {
      if (earlier.name == t->name) return fail("--tool " + t->name + ": given twice");
    }
    tools.push_back(std::move(*t));
  }
  return tools;
}

}  // namespace kiln
