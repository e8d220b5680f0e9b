#include "common/logging.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/cfg/env.h>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "common/fd.h"

namespace kiln {
namespace {

// Each line written with one write(2) to a file we opened ourselves: nothing is buffered (a
// crash loses no line), and the file was opened the safe way (open_log_file).
class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit FdSink(UniqueFd fd) : fd_(std::move(fd)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    std::string_view rest(line.data(), line.size());
    while (!rest.empty()) {
      const ssize_t n = ::write(fd_.get(), rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // a full disk loses log lines, never the process
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  void flush_() override {}

 private:
  UniqueFd fd_;
};

}  // namespace

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
  if (options.file.empty()) {
    logger = std::make_shared<spdlog::logger>(program,
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    Expected<UniqueFd> fd = open_log_file(options.file);
    if (!fd) return fail(fd.error());
    logger = std::make_shared<spdlog::logger>(program, std::make_shared<FdSink>(std::move(*fd)));
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
