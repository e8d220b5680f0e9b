// The subcommands that talk to a shared daemon (`kiln-supervisor --listen`) that is running:
// stats and shutdown. (exec, which starts one, is the launcher: client/launcher.cc.)
#include <cstdio>

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

int shutdown_command(const std::string& socket_option, bool drain) {
  std::unique_ptr<Pool> pool = running_daemon(socket_option, "shutdown");
  if (!pool) return 1;
  pool->shutdown(drain);
  return 0;
}

}  // namespace kiln::client
