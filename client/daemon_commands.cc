// The subcommands for a shared daemon (`kiln-supervisor --listen`): daemon start and status, stats
// and shutdown. (exec, which also starts one when none runs, is the launcher: client/launcher.cc.)
#include <cstdio>
#include <string>

#include "client/commands.h"
#include "client/json_msgpack.h"

namespace kiln::client {

Expected<std::unique_ptr<Pool>> connect_to_daemon(const std::string& socket) {
  Expected<std::optional<std::string>> key_id = key_id_from_env();
  if (!key_id) return fail(key_id.error());
  return Pool::connect(socket, *key_id);
}

namespace {

// The daemon on --socket (or the default socket), for a subcommand that only talks to one that
// runs: nothing is started. Says why on stderr, under `command`'s name, when it cannot.
std::unique_ptr<Pool> running_daemon(const std::string& socket_option, const char* command) {
  Expected<std::string> socket =
      socket_option.empty() ? default_socket_path() : Expected<std::string>(socket_option);
  Expected<std::unique_ptr<Pool>> pool =
      socket ? connect_to_daemon(*socket) : Expected<std::unique_ptr<Pool>>(fail(socket.error()));
  if (!pool) {
    std::fprintf(stderr, "kiln %s: %s\n", command, pool.error().c_str());
    return nullptr;
  }
  return std::move(*pool);
}

}  // namespace

int stats_command(const std::string& socket_option) {
  std::unique_ptr<Pool> pool = running_daemon(socket_option, "stats");
  if (!pool) return 1;
  Expected<proto::Stats> st = pool->stats();
  if (!st) {
    std::fprintf(stderr, "kiln stats: %s\n", st.error().c_str());
    return 1;
  }
  std::string frame;
  proto::encode(*st, frame);
  std::printf("%s\n", to_json(proto::RawObject{frame.substr(4)}).dump(2).c_str());
  return 0;
}

int daemon_start_command(const DaemonStartOptions& options) {
  Expected<std::string> socket =
      options.socket.empty() ? default_socket_path() : Expected<std::string>(options.socket);
  Expected<std::string> supervisor =
      socket ? find_supervisor(options.supervisor) : Expected<std::string>(fail(socket.error()));
  if (!supervisor) {
    std::fprintf(stderr, "kiln daemon start: %s\n", supervisor.error().c_str());
    return 1;
  }
  Expected<std::unique_ptr<Pool>> running = connect_to_daemon(*socket);
  if (running || running.error_code() == kRefused) {
    std::fprintf(stderr, "kiln daemon start: %s\n",
                 running ? ("a daemon already serves " + *socket + " (pid " +
                            std::to_string((*running)->hello().pid) +
                            "): stop it first with `kiln shutdown`")
                               .c_str()
                         : running.error().c_str());
    return 1;
  }
  std::vector<std::string> args = {"--idle-exit-ms", std::to_string(options.idle_exit_ms)};
  args.insert(args.end(), options.supervisor_options.begin(), options.supervisor_options.end());
  Expected<DaemonLink> link = start_daemon(*socket, *supervisor, args, std::chrono::seconds(5));
  if (!link) {
    std::fprintf(stderr, "kiln daemon start: %s\n", link.error().c_str());
    return 1;
  }
  std::printf("kiln daemon: serving %s (pid %llu, %llu workers; log %s.log)\n", socket->c_str(),
              static_cast<unsigned long long>(link->hello().pid),
              static_cast<unsigned long long>(link->hello().workers), socket->c_str());
  return 0;
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

}  // namespace

int daemon_status_command(const std::string& socket_option) {
  Expected<std::string> path =
      socket_option.empty() ? default_socket_path() : Expected<std::string>(socket_option);
  if (!path) {
    std::fprintf(stderr, "kiln daemon status: %s\n", path.error().c_str());
    return 1;
  }
  const std::string& socket = *path;
  std::unique_ptr<Pool> pool = running_daemon(socket, "daemon status");
  if (!pool) return 1;
  Expected<proto::Stats> st = pool->stats();
  if (!st) {
    std::fprintf(stderr, "kiln daemon status: %s\n", st.error().c_str());
    return 1;
  }
  const proto::Hello& hello = pool->hello();
  std::string kinds;
  for (const std::string& k : hello.kinds) kinds += (kinds.empty() ? "" : ", ") + k;
  auto u = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("socket:  %s\npid:     %llu\nserver:  %s\nuptime:  %s\n", socket.c_str(),
              u(hello.pid), hello.server.c_str(), duration_text(st->uptime_ms).c_str());
  std::printf("pool:    %llu workers (%llu alive, %llu busy), %llu started, %llu crashed\n",
              u(st->workers_configured), u(st->workers_alive), u(st->workers_busy),
              u(st->worker_starts), u(st->worker_crashes));
  std::printf("jobs:    %llu submitted, %llu succeeded, %llu failed, %llu queued, %llu running\n",
              u(st->jobs_submitted), u(st->jobs_succeeded), u(st->jobs_failed), u(st->jobs_queued),
              u(st->jobs_running));
  std::printf("kinds:   %s\nlog:     %s.log\n", kinds.c_str(), socket.c_str());
  return 0;
}

int shutdown_command(const std::string& socket_option, bool drain) {
  std::unique_ptr<Pool> pool = running_daemon(socket_option, "shutdown");
  if (!pool) return 1;
  pool->shutdown(drain);
  return 0;
}

}  // namespace kiln::client
