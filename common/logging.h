// Logging set-up shared by both binaries: spdlog to stderr or a file, never to stdout (stdout can
// be a protocol link).
#pragma once

#include <spdlog/common.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "common/result.h"

namespace kiln {

struct LogOptions {
  std::string level;  // "" = SPDLOG_LEVEL, else info
  std::string file;   // "" = stderr
  // What this process writes to `file` at most: at the cap, a last line says so and no more is
  // written (0: no cap; stderr has none).
  uint64_t max_bytes = 0;
};

// Level names accepted by --log-level.
bool valid_log_level(const std::string& level);

// SPDLOG_LEVEL's text, read as spdlog::cfg::load_env_levels reads it: comma-separated items,
// `level` for every logger or `name=level` for one, the last item of a name winning, blanks
// around names and levels trimmed, levels in any case; an item whose level is not a level is
// ignored, and so is a text over 512 bytes. Split without spdlog's istringstream: iostreams and
// their locales were a fifth of the static worker's code (bench/NOTES.md).
struct EnvLevels {
  std::optional<spdlog::level::level_enum> all;
  std::unordered_map<std::string, spdlog::level::level_enum> named;
};
EnvLevels parse_env_levels(std::string_view text);

// Installs the default logger named `program`: pattern with time, level and pid. The level is
// --log-level if given, else SPDLOG_LEVEL, else info. Fails if the log file cannot be opened.
Expected<void> setup_logging(const std::string& program, const LogOptions& options);

}  // namespace kiln
