// The subcommands for a shared daemon (`kiln-supervisor --listen`): daemon start and status, top,
// stats and shutdown. (exec, which also starts one when none runs, is the launcher:
// client/launcher.cc.)
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <thread>

#include "client/commands.h"
#include "client/json_msgpack.h"
#include "common/exit_codes.h"
#include "common/text.h"

namespace kiln::client {

// Every text from the daemon goes to the terminal through printable(): a job named with escape
// sequences must not retitle, clear or recolour it. Messages and paths are not cut.
constexpr std::size_t kNoCut = SIZE_MAX;

Expected<std::unique_ptr<Pool>> connect_to_daemon(const std::string& socket) {
  Expected<std::optional<std::string>> key_id = key_id_from_env();
  if (!key_id) return fail(key_id.error());
  return Pool::connect(socket, *key_id);
}

namespace {

// The daemon on --socket (or the default socket), for a subcommand that only talks to one that
// runs: nothing is started. Says why on stderr, under `command`'s name, when it cannot. `path`,
// if given, gets the socket's path.
std::unique_ptr<Pool> running_daemon(const std::string& socket_option, const char* command,
                                     std::string* path = nullptr) {
  Expected<std::string> socket =
      socket_option.empty() ? default_socket_path() : Expected<std::string>(socket_option);
  if (socket && path != nullptr) *path = *socket;
  Expected<std::unique_ptr<Pool>> pool =
      socket ? connect_to_daemon(*socket) : Expected<std::unique_ptr<Pool>>(fail(socket.error()));
  if (!pool) {
    std::fprintf(stderr, "kiln %s: %s\n", command, printable(pool.error(), kNoCut).c_str());
    return nullptr;
  }
  return std::move(*pool);
}

}  // namespace

int stats_command(const std::string& socket_option) {
  std::unique_ptr<Pool> pool = running_daemon(socket_option, "stats");
  if (!pool) return exit_code::kCommandFailed;
  Expected<proto::Stats> st = pool->stats();
  if (!st) {
    std::fprintf(stderr, "kiln stats: %s\n", printable(st.error(), kNoCut).c_str());
    return exit_code::kCommandFailed;
  }
  std::string frame;
  proto::encode(*st, frame);
  std::printf("%s\n", json_text(to_json(proto::RawObject{frame.substr(4)}), 2).c_str());
  return exit_code::kOk;
}

int daemon_start_command(const DaemonStartOptions& options) {
  Expected<std::string> socket =
      options.socket.empty() ? default_socket_path() : Expected<std::string>(options.socket);
  Expected<std::string> supervisor =
      socket ? find_supervisor(options.supervisor) : Expected<std::string>(fail(socket.error()));
  if (!supervisor) {
    std::fprintf(stderr, "kiln daemon start: %s\n", supervisor.error().c_str());
    return exit_code::kCommandFailed;
  }
  Expected<std::unique_ptr<Pool>> running = connect_to_daemon(*socket);
  // A daemon that refuses us or does not answer in time still holds the socket.
  if (running || running.error_code() != kUnreachable) {
    std::fprintf(stderr, "kiln daemon start: %s\n",
                 running ? ("a daemon already serves " + *socket + " (pid " +
                            std::to_string((*running)->hello().pid) +
                            "): stop it first with `kiln shutdown`")
                               .c_str()
                         : running.error().c_str());
    return exit_code::kCommandFailed;
  }
  std::vector<std::string> args = {"--idle-exit-ms", std::to_string(options.idle_exit_ms)};
  args.insert(args.end(), options.supervisor_options.begin(), options.supervisor_options.end());
  Expected<DaemonLink> link = start_daemon(*socket, *supervisor, args, std::chrono::seconds(5),
                                           DaemonEnvironment::kCallers);
  if (!link) {
    std::fprintf(stderr, "kiln daemon start: %s\n", link.error().c_str());
    return exit_code::kCommandFailed;
  }
  std::printf("kiln daemon: serving %s (pid %llu, %llu workers; log %s.log)\n", socket->c_str(),
              static_cast<unsigned long long>(link->hello().pid),
              static_cast<unsigned long long>(link->hello().workers), socket->c_str());
  return exit_code::kOk;
}

namespace {

// 75 ms, 12.3 s, 4 min 05 s, 2 h 03 min.
std::string duration_text(uint64_t ms) {
  char text[64];
  const uint64_t s = ms / 1000;
  if (ms < 1000) {
    std::snprintf(text, sizeof text, "%llu ms", static_cast<unsigned long long>(ms));
  } else if (s < 60) {
    std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ms) / 1000);
  } else if (s < 3600) {
    std::snprintf(text, sizeof text, "%llu min %02llu s", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  } else {
    std::snprintf(text, sizeof text, "%llu h %02llu min", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>(s / 60 % 60));
  }
  return text;
}

// A line per distcc host: its slots, jobs, state and, backed off, why and since when.
std::string host_lines(const proto::Stats& st) {
  std::string text;
  if (!st.hosts) return text;
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  char line[1024];
  for (const proto::HostInfo& h : *st.hosts) {
    std::string state = h.state;
    if (h.since_ms) state += " for " + duration_text(*h.since_ms);
    if (h.retry_in_ms) state += ", retried in " + duration_text(*h.retry_in_ms);
    if (h.reason) state += " (" + *h.reason + ")";
    std::snprintf(
        line, sizeof line, "  %-24s %2llu slots, %2llu running, %5llu jobs run, %3llu failed: %s\n",
        h.host.c_str(), u(h.slots), u(h.running), u(h.jobs), u(h.failures), state.c_str());
    text += line;
  }
  return text;
}

}  // namespace

int daemon_status_command(const std::string& socket_option) {
  std::string socket;
  std::unique_ptr<Pool> pool = running_daemon(socket_option, "daemon status", &socket);
  if (!pool) return exit_code::kCommandFailed;
  Expected<proto::Stats> st = pool->stats();
  if (!st) {
    std::fprintf(stderr, "kiln daemon status: %s\n", printable(st.error(), kNoCut).c_str());
    return exit_code::kCommandFailed;
  }
  const proto::Hello& hello = pool->hello();
  std::string kinds;
  for (const std::string& k : hello.kinds) kinds += (kinds.empty() ? "" : ", ") + printable(k);
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("socket:  %s\npid:     %llu\nserver:  %s\nuptime:  %s\n", socket.c_str(),
              u(hello.pid), printable(hello.server).c_str(), duration_text(st->uptime_ms).c_str());
  std::printf("pool:    %llu workers (%llu alive, %llu busy), %llu started, %llu crashed\n",
              u(st->workers_configured), u(st->workers_alive), u(st->workers_busy),
              u(st->worker_starts), u(st->worker_crashes));
  std::printf("jobs:    %llu submitted, %llu succeeded, %llu failed, %llu queued, %llu running\n",
              u(st->jobs_submitted), u(st->jobs_succeeded), u(st->jobs_failed), u(st->jobs_queued),
              u(st->jobs_running));
  std::printf("kinds:   %s\nlog:     %s.log\n", kinds.c_str(), socket.c_str());
  if (st->hosts) std::printf("hosts:   distcc\n%s", host_lines(*st).c_str());
  return exit_code::kOk;
}

namespace {

// One screen of kiln top: the pool's figures, then a line per live worker with its job.
std::string top_screen(const std::string& socket, const proto::Hello& hello,
                       const proto::Stats& st) {
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  char line[512];
  std::snprintf(line, sizeof line,
                "kiln top: %s, pid %llu, up %s\n%llu workers (%llu alive, %llu busy), %llu "
                "started, %llu crashed; jobs: %llu queued, %llu running, %llu done, %llu "
                "failed\n\n  %-8s %-9s %6s %8s %9s  %s\n",
                socket.c_str(), u(hello.pid), duration_text(st.uptime_ms).c_str(),
                u(st.workers_configured), u(st.workers_alive), u(st.workers_busy),
                u(st.worker_starts), u(st.worker_crashes), u(st.jobs_queued), u(st.jobs_running),
                u(st.jobs_succeeded), u(st.jobs_failed), "PID", "STATE", "JOBS", "RSS MiB",
                "ELAPSED", "JOB");
  std::string screen = line;
  for (const proto::WorkerInfo& w : st.worker_list) {
    std::string job;
    if (w.job) {
      job = printable(w.job->name) + " (" + printable(w.job->kind) +
            (w.job->phase ? ", " + printable(*w.job->phase) : "") + ")";
    }
    if (w.host) job = w.job ? job + " on " + *w.host : "(host " + *w.host + ")";
    std::snprintf(line, sizeof line, "  %-8llu %-9s %6llu %8.1f %9s  %s\n", u(w.pid),
                  printable(w.state).c_str(), u(w.jobs), static_cast<double>(w.rss_kb) / 1024,
                  w.job ? duration_text(w.job->elapsed_ms).c_str() : "", job.c_str());
    screen += line;
  }
  if (st.hosts) screen += "\n  distcc hosts\n" + host_lines(st);
  return screen;
}

}  // namespace

int top_command(const std::string& socket_option, uint64_t interval_ms, bool once) {
  std::string socket;
  std::unique_ptr<Pool> pool = running_daemon(socket_option, "top", &socket);
  if (!pool) return exit_code::kCommandFailed;
  // On a terminal, the screen is redrawn in place every interval until interrupted; otherwise
  // (a pipe, a file, --once) it is printed once.
  const bool live = !once && ::isatty(STDOUT_FILENO) != 0;
  for (;;) {
    Expected<proto::Stats> st = pool->stats();
    if (!st) {
      std::fprintf(stderr, "kiln top: %s\n", printable(st.error(), kNoCut).c_str());
      return exit_code::kCommandFailed;
    }
    const std::string screen = top_screen(socket, pool->hello(), *st);
    std::fputs(live ? ("\x1b[H\x1b[2J" + screen).c_str() : screen.c_str(), stdout);
    std::fflush(stdout);
    if (!live) return exit_code::kOk;
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
}

int trace_command(const std::string& socket_option, const std::optional<std::string>& file) {
  std::unique_ptr<Pool> pool = running_daemon(socket_option, "trace");
  if (!pool) return exit_code::kCommandFailed;
  std::optional<std::string> absolute = file;
  if (file && !file->starts_with("/")) {
    // The daemon's directory is "/": the file is the caller's, relative to where it is.
    Expected<std::string> cwd = current_directory();
    if (!cwd) {
      std::fprintf(stderr, "kiln trace: %s: give the file's absolute path\n", cwd.error().c_str());
      return exit_code::kCommandFailed;
    }
    absolute = *cwd + "/" + *file;
  }
  Expected<proto::Traced> traced = pool->trace(absolute);
  if (!traced || traced->error) {
    std::fprintf(stderr, "kiln trace: %s\n",
                 printable(traced ? *traced->error : traced.error(), kNoCut).c_str());
    return exit_code::kCommandFailed;
  }
  if (traced->file) {
    std::printf("kiln trace: the daemon writes its timeline to %s (kiln trace stop to end it)\n",
                printable(*traced->file, kNoCut).c_str());
  } else {
    std::printf("kiln trace: no timeline is being written\n");
  }
  return exit_code::kOk;
}

int shutdown_command(const std::string& socket_option, bool drain) {
  std::unique_ptr<Pool> pool = running_daemon(socket_option, "shutdown");
  if (!pool) return exit_code::kCommandFailed;
  pool->shutdown(drain);
  return exit_code::kOk;
}

}  // namespace kiln::client
