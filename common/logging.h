// Logging set-up shared by both binaries: spdlog to stderr or a file, never to stdout (stdout can
// be a protocol link).
#pragma once

#include <string>

#include "common/result.h"

namespace kiln {

struct LogOptions {
  std::string level;  // "" = SPDLOG_LEVEL, else info
  std::string file;   // "" = stderr
};

// Level names accepted by --log-level.
bool valid_log_level(const std::string& level);

// Installs the default logger named `program`: pattern with time, level and pid. The level is
// --log-level if given, else SPDLOG_LEVEL, else info. Fails if the log file cannot be opened.
Expected<bool> setup_logging(const std::string& program, const LogOptions& options);

}  // namespace kiln
