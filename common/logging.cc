#include "common/logging.h"

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>

namespace kiln {

bool valid_log_level(const std::string& level) {
  static constexpr std::array kLevels = {"trace", "debug",    "info", "warn",
                                         "error", "critical", "off"};
  for (const char* l : kLevels) {
    if (level == l) return true;
  }
  return false;
}

Expected<bool> setup_logging(const std::string& program, const LogOptions& options) {
  std::shared_ptr<spdlog::logger> logger;
  try {
    if (options.file.empty()) {
      logger = std::make_shared<spdlog::logger>(program,
                                                std::make_shared<spdlog::sinks::stderr_sink_mt>());
    } else {
      logger = std::make_shared<spdlog::logger>(
          program, std::make_shared<spdlog::sinks::basic_file_sink_mt>(options.file));
    }
  } catch (const spdlog::spdlog_ex& e) {
    return fail("cannot open log file " + options.file + ": " + e.what());
  }
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n %P] [%l] %v");
  // Crashes and _exit lose buffered lines: flush anything that matters at once.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);
  spdlog::cfg::load_env_levels();
  if (!options.level.empty()) spdlog::set_level(spdlog::level::from_str(options.level));
  return true;
}

}  // namespace kiln
