#include "common/logging.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "common/fd.h"
#include "common/text.h"

namespace kiln {
namespace {

// Each line written with one write(2) to a file we opened ourselves: nothing is buffered (a
// crash loses no line), and the file was opened the safe way (open_log_file). At most
// `max_bytes` (0: no cap): the line that would pass it is replaced by one that says so, once.
class FdSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  FdSink(UniqueFd fd, uint64_t max_bytes) : fd_(std::move(fd)), max_bytes_(max_bytes) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (capped_) return;
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    // Room is kept for the line that says the cap was reached.
    constexpr uint64_t kEndRoom = 256;
    if (max_bytes_ != 0 && written_ + line.size() + kEndRoom > max_bytes_) {
      capped_ = true;
      const std::string last = "kiln: this log reached its cap of " + std::to_string(max_bytes_) +
                               " bytes (--log-max-mb): no more lines are written\n";
      write_all(last);
      return;
    }
    write_all(std::string_view(line.data(), line.size()));
  }
  void flush_() override {}

 private:
  void write_all(std::string_view rest) {
    written_ += rest.size();
    while (!rest.empty()) {
      const ssize_t n = ::write(fd_.get(), rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // a full disk loses log lines, never the process
      rest.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  UniqueFd fd_;
  uint64_t max_bytes_;
  uint64_t written_ = 0;
  bool capped_ = false;
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

namespace {

std::string_view trim_blanks(std::string_view text) {
  constexpr std::string_view kBlanks = " \n\r\t";
  const std::size_t first = text.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(kBlanks) - first + 1);
}

}  // namespace

EnvLevels parse_env_levels(std::string_view text) {
  EnvLevels levels;
  if (text.empty() || text.size() > 512) return levels;
  std::unordered_map<std::string, std::string> items;  // name ("" for all) -> its last level
  for (std::string_view item : split(text, ',')) {
    if (item.empty()) continue;
    const std::size_t eq = item.find('=');
    const std::string_view name = eq == std::string_view::npos ? "" : item.substr(0, eq);
    const std::string_view level = eq == std::string_view::npos ? item : item.substr(eq + 1);
    items[std::string(trim_blanks(name))] = std::string(trim_blanks(level));
  }
  for (auto& [name, level_name] : items) {
    for (char& c : level_name) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    const spdlog::level::level_enum level = spdlog::level::from_str(level_name);
    if (level == spdlog::level::off && level_name != "off") continue;  // not a level
    if (name.empty()) {
      levels.all = level;
    } else {
      levels.named[name] = level;
    }
  }
  return levels;
}

Expected<void> setup_logging(const std::string& program, const LogOptions& options) {
  std::shared_ptr<spdlog::logger> logger;
  if (options.file.empty()) {
    logger = std::make_shared<spdlog::logger>(program,
                                              std::make_shared<spdlog::sinks::stderr_sink_mt>());
  } else {
    Expected<UniqueFd> fd = open_log_file(options.file);
    if (!fd) return fail(fd.error());
    logger = std::make_shared<spdlog::logger>(
        program, std::make_shared<FdSink>(std::move(*fd), options.max_bytes));
  }
  logger->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%n %P] [%l] %v");
  // Crashes and _exit lose buffered lines: flush anything that matters at once.
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);
  if (const char* env = std::getenv("SPDLOG_LEVEL"); env != nullptr) {
    EnvLevels levels = parse_env_levels(env);
    spdlog::details::registry::instance().set_levels(std::move(levels.named),
                                                     levels.all ? &*levels.all : nullptr);
  }
  if (!options.level.empty()) spdlog::set_level(spdlog::level::from_str(options.level));
  return {};
}

}  // namespace kiln
