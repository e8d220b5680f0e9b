#include "supervisor/trace.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "common/text.h"

namespace kiln::supervisor {
namespace {

// `text` as a JSON string, quotes included (valid UTF-8 first: a file name may not be).
std::string json_string(std::string_view text) {
  const std::string valid = to_valid_utf8(text);
  std::string out = "\"";
  for (const char c : valid) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char esc[8];
      std::snprintf(esc, sizeof esc, "\\u%04x", static_cast<unsigned>(c));
      out += esc;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

namespace {

// A new file in `path`'s directory renamed to `path`, opened for writing: what was at `path` is
// never opened (see Trace::open).
Expected<std::FILE*> create_replacing(const std::string& path) {
  const auto cannot = [&path](const std::string& why) {
    return fail("cannot write the trace " + printable(path) + ": " + why);
  };
  if (path.empty() || path.find('\0') != std::string::npos) return cannot("not a file name");
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
    return cannot("it exists and is not a regular file");
  }
  const std::size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  std::string temp = dir + (slash == std::string::npos ? "/" : "") + ".kiln-trace.XXXXXX";
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);  // 0600, O_EXCL: never an existing file
  if (fd < 0) return cannot(std::strerror(errno));
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    const int e = errno;
    ::unlink(temp.c_str());
    ::close(fd);
    return cannot(std::strerror(e));
  }
  std::FILE* file = ::fdopen(fd, "w");
  if (file == nullptr) {
    ::close(fd);
    return cannot(std::strerror(errno));
  }
  return file;
}

}  // namespace

Expected<std::unique_ptr<Trace>> Trace::open(const std::string& path,
                                             const std::vector<std::string>& lanes, Micros now,
                                             uint64_t max_bytes) {
  Expected<std::FILE*> file = create_replacing(path);
  if (!file) return fail(file.error());
  std::unique_ptr<Trace> trace(new Trace(*file, now, max_bytes));
  std::fputs("[\n", *file);
  trace->written_ = 2;
  const std::string pid = std::to_string(::getpid());
  trace->emit("{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":" + pid +
              ",\"tid\":0,\"ts\":0,\"args\":{\"name\":\"kiln-supervisor " + pid + "\"}}");
  for (std::size_t slot = 0; slot < lanes.size(); ++slot) {
    trace->emit("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" + pid +
                ",\"tid\":" + std::to_string(slot + 1) +
                ",\"ts\":0,\"args\":{\"name\":" + json_string(lanes[slot]) + "}}");
  }
  return trace;
}

Trace::~Trace() {
  if (!capped_) std::fputs("\n]\n", file_);
  std::fclose(file_);
}

std::string Trace::capped_mark() const {
  return "{\"name\":\"the timeline reached its cap of " + std::to_string(max_bytes_) +
         " bytes (--trace-max-mb): nothing after this is in it\",\"ph\":\"i\",\"s\":\"g\","
         "\"pid\":" +
         std::to_string(::getpid()) + ",\"tid\":0,\"ts\":" + std::to_string(last_ts_) + "}";
}

void Trace::emit(const std::string& event) {
  if (capped_) return;
  // Room is kept for the mark that says the cap was reached and the closing bracket.
  constexpr uint64_t kEndRoom = 256;
  if (max_bytes_ != 0 && written_ + event.size() + 2 + kEndRoom > max_bytes_) {
    capped_ = true;
    spdlog::warn("the timeline reached its cap of {} bytes (--trace-max-mb): no more is written",
                 max_bytes_);
    std::fputs(first_ ? "" : ",\n", file_);
    std::fputs(capped_mark().c_str(), file_);
    std::fputs("\n]\n", file_);
    std::fflush(file_);
    return;
  }
  if (!first_) std::fputs(",\n", file_);
  first_ = false;
  std::fputs(event.c_str(), file_);
  written_ += event.size() + 2;
  std::fflush(file_);
}

void Trace::worker(std::size_t slot, pid_t pid, std::string_view what, Micros at) {
  last_ts_ = at - base_;
  emit("{\"name\":" + json_string(what) +
       ",\"cat\":\"worker\",\"ph\":\"i\",\"s\":\"t\",\"pid\":" + std::to_string(::getpid()) +
       ",\"tid\":" + std::to_string(slot + 1) + ",\"ts\":" + std::to_string(at - base_) +
       ",\"args\":{\"worker_pid\":" + std::to_string(pid) + "}}");
}

void Trace::job(const PoolJob& job, const proto::Result& result, std::optional<std::size_t> slot,
                const PoolLoad& load, Micros at) {
  last_ts_ = at - base_;
  const std::string pid = std::to_string(::getpid());
  if (slot) {
    const std::string outcome = result.ok ? "ok" : result.error ? result.error->code : "failed";
    emit("{\"name\":" + json_string(job.name.empty() ? job.kind : job.name) +
         ",\"cat\":" + json_string(job.kind) + ",\"ph\":\"X\",\"pid\":" + pid + ",\"tid\":" +
         std::to_string(*slot + 1) + ",\"ts\":" + std::to_string(job.started - base_) +
         ",\"dur\":" + std::to_string(result.run_us) + ",\"args\":{\"id\":" +
         std::to_string(job.id) + ",\"client\":" + std::to_string(job.client) + ",\"queue_us\":" +
         std::to_string(result.queue_us) + ",\"run_us\":" + std::to_string(result.run_us) +
         ",\"worker_pid\":" + std::to_string(result.worker_pid.value_or(0)) +
         ",\"outcome\":" + json_string(outcome) + "}}");
  }
  emit("{\"name\":\"pool\",\"ph\":\"C\",\"pid\":" + pid + ",\"tid\":0,\"ts\":" +
       std::to_string(at - base_) + ",\"args\":{\"queued\":" + std::to_string(load.queued) +
       ",\"running\":" + std::to_string(load.running) +
       ",\"workers alive\":" + std::to_string(load.alive) + "}}");
}

}  // namespace kiln::supervisor
