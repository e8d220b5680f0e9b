#include "supervisor/trace.h"

#include <fcntl.h>
#include <unistd.h>

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

Expected<std::unique_ptr<Trace>> Trace::open(const std::string& path,
                                             const std::vector<std::string>& lanes, Micros now) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) return fail("cannot write the trace " + path + ": " + std::strerror(errno));
  std::FILE* file = ::fdopen(fd, "w");
  if (file == nullptr) {
    ::close(fd);
    return fail("cannot write the trace " + path + ": " + std::strerror(errno));
  }
  std::unique_ptr<Trace> trace(new Trace(file, now));
  std::fputs("[\n", file);
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
  std::fputs("\n]\n", file_);
  std::fclose(file_);
}

void Trace::emit(const std::string& event) {
  if (!first_) std::fputs(",\n", file_);
  first_ = false;
  std::fputs(event.c_str(), file_);
  std::fflush(file_);
}

void Trace::worker(std::size_t slot, pid_t pid, std::string_view what, Micros at) {
  emit("{\"name\":" + json_string(what) +
       ",\"cat\":\"worker\",\"ph\":\"i\",\"s\":\"t\",\"pid\":" + std::to_string(::getpid()) +
       ",\"tid\":" + std::to_string(slot + 1) + ",\"ts\":" + std::to_string(at - base_) +
       ",\"args\":{\"worker_pid\":" + std::to_string(pid) + "}}");
}

void Trace::job(const PoolJob& job, const proto::Result& result, std::optional<std::size_t> slot,
                const PoolLoad& load, Micros at) {
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
