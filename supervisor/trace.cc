#include "supervisor/trace.h"

#include <fcntl.h>
#include <unistd.h>

#include <msgpack.hpp>

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

std::string basename_of(std::string_view path) {
  const std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

bool looks_like_source(std::string_view arg) {
  static constexpr std::array<std::string_view, 16> kExtensions = {
      ".c",  ".cc", ".cp", ".cpp", ".cxx", ".c++", ".C",   ".m",
      ".mm", ".s",  ".S",  ".sx",  ".cu",  ".f",   ".f90", ".F90"};
  if (arg.empty() || arg[0] == '-') return false;
  const std::size_t dot = arg.rfind('.');
  if (dot == std::string_view::npos || dot == 0 || arg[dot - 1] == '/') return false;
  const std::string_view ext = arg.substr(dot);
  for (std::string_view e : kExtensions) {
    if (ext == e) return true;
  }
  return false;
}

// The argv of an exec payload; empty when it has none (the worker will say why).
std::vector<std::string> argv_of(const proto::RawObject& payload) {
  std::vector<std::string> argv;
  try {
    // Bounded like any untrusted body: the payload is a client's.
    const msgpack::unpack_limit limit(1 << 16, 1 << 16, 1 << 20, 1 << 20, 1 << 20, 8);
    const msgpack::object_handle h =
        msgpack::unpack(payload.bytes.data(), payload.bytes.size(), nullptr, nullptr, limit);
    const msgpack::object& map = h.get();
    if (map.type != msgpack::type::MAP) return argv;
    for (uint32_t i = 0; i < map.via.map.size; ++i) {
      const msgpack::object& k = map.via.map.ptr[i].key;
      const msgpack::object& v = map.via.map.ptr[i].val;
      if (k.type != msgpack::type::STR ||
          std::string_view(k.via.str.ptr, k.via.str.size) != "argv" ||
          v.type != msgpack::type::ARRAY) {
        continue;
      }
      for (uint32_t j = 0; j < v.via.array.size; ++j) {
        const msgpack::object& a = v.via.array.ptr[j];
        if (a.type == msgpack::type::STR) argv.emplace_back(a.via.str.ptr, a.via.str.size);
      }
    }
  } catch (const std::exception&) {
    argv.clear();
  }
  return argv;
}

}  // namespace

Expected<std::unique_ptr<Trace>> Trace::open(const std::string& path, std::size_t slots,
                                             Micros now) {
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
  for (std::size_t slot = 0; slot < slots; ++slot) {
    trace->emit("{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":" + pid +
                ",\"tid\":" + std::to_string(slot + 1) +
                ",\"ts\":0,\"args\":{\"name\":\"worker slot " + std::to_string(slot) + "\"}}");
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

std::string Trace::label(const std::string& kind, const proto::RawObject& payload) {
  if (kind != "exec") return kind;
  const std::vector<std::string> argv = argv_of(payload);
  for (std::size_t i = 1; i < argv.size(); ++i) {
    if (looks_like_source(argv[i])) return basename_of(argv[i]);
  }
  return argv.empty() ? kind : basename_of(argv[0]);
}

void Trace::sent(std::size_t slot, const std::string& kind, const proto::RawObject& payload) {
  label_of_[slot] = label(kind, payload);
}

void Trace::worker(std::size_t slot, pid_t pid, std::string_view what, Micros at) {
  lane_of_[pid] = slot;
  emit("{\"name\":" + json_string(what) +
       ",\"cat\":\"worker\",\"ph\":\"i\",\"s\":\"t\",\"pid\":" + std::to_string(::getpid()) +
       ",\"tid\":" + std::to_string(slot + 1) + ",\"ts\":" + std::to_string(at - base_) +
       ",\"args\":{\"worker_pid\":" + std::to_string(pid) + "}}");
}

void Trace::job(const PoolJob& job, const proto::Result& result, std::size_t queued,
                std::size_t running, std::size_t alive, Micros at) {
  const std::string pid = std::to_string(::getpid());
  const auto lane =
      result.worker_pid ? lane_of_.find(static_cast<pid_t>(*result.worker_pid)) : lane_of_.end();
  if (job.started != 0 && lane != lane_of_.end()) {
    const std::string outcome = result.ok ? "ok" : result.error ? result.error->code : "failed";
    const auto named = label_of_.find(lane->second);
    emit("{\"name\":" + json_string(named != label_of_.end() ? named->second : job.kind) +
         ",\"cat\":" + json_string(job.kind) + ",\"ph\":\"X\",\"pid\":" + pid + ",\"tid\":" +
         std::to_string(lane->second + 1) + ",\"ts\":" + std::to_string(job.started - base_) +
         ",\"dur\":" + std::to_string(result.run_us) + ",\"args\":{\"id\":" +
         std::to_string(job.id) + ",\"client\":" + std::to_string(job.client) + ",\"queue_us\":" +
         std::to_string(result.queue_us) + ",\"run_us\":" + std::to_string(result.run_us) +
         ",\"worker_pid\":" + std::to_string(*result.worker_pid) +
         ",\"outcome\":" + json_string(outcome) + "}}");
  }
  emit("{\"name\":\"pool\",\"ph\":\"C\",\"pid\":" + pid + ",\"tid\":0,\"ts\":" +
       std::to_string(at - base_) + ",\"args\":{\"queued\":" + std::to_string(queued) +
       ",\"running\":" + std::to_string(running) + ",\"workers alive\":" + std::to_string(alive) +
       "}}");
}

}  // namespace kiln::supervisor
