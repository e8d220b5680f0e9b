// The two inputs kiln reads from users, parsed without touching a pool: a line of `kiln run`'s
// JSON-lines input, and a compile_commands.json. Both turn every malformed input into an error
// message (never an exception), which is what their fuzz targets check.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.h"
#include "common/result.h"

namespace kiln::client {

// One job of `kiln run`: {"kind": ..., "payload": ...} or the exec short form
// {"argv": [...], "cwd": ..., "env": {...}, "stdin": "...", "clear_env": bool}, each with optional
// "timeout_ms" and "priority".
struct JobLine {
  std::string kind;
  proto::RawObject payload;
  std::optional<uint64_t> timeout_ms;
  std::optional<int64_t> priority;
};
Expected<JobLine> parse_job_line(std::string_view line);

// One entry of a compile database, its command as argv (the "command" form split as a POSIX
// shell would).
struct CompileEntry {
  std::string directory, file;
  std::vector<std::string> argv;
  std::string output;  // "output", else the command's -o argument, else ""

  // How a report names the entry: "a.c -> a.o", so two entries of one source differ.
  std::string label() const { return output.empty() ? file : file + " -> " + output; }
};
// A compile database's entries, and what is wrong with each entry that is not one (each
// "PATH: entry N: why"): one bad entry costs only itself.
struct CompileDb {
  std::vector<CompileEntry> entries;
  std::vector<std::string> problems;
};
// The entries of a compile database whose "file" matches `filter` (an ECMAScript regex; "" for
// all). Fails for what spoils the whole file (not JSON, not an array, a bad filter, a filter that
// matches nothing). `path` names the database in messages.
Expected<CompileDb> parse_compile_db(std::string_view text, const std::string& path,
                                     const std::string& filter);

}  // namespace kiln::client
