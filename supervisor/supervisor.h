// kiln-supervisor: one thread, one libuv loop. It owns the WorkerPool (the rules) and implements
// its PoolEnv with real processes; it owns the client link(s) (a daemon's socket through its
// SocketListener), the signal watchers, the parent watch and the timer that serves the pool's
// deadlines.
#pragma once

#include <uv.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/exec_strings.h"
#include "common/fd.h"
#include "common/result.h"
#include "supervisor/client_connection.h"
#include "supervisor/options.h"
#include "supervisor/pool.h"
#include "supervisor/rules.h"
#include "supervisor/socket_listener.h"
#include "supervisor/trace.h"
#include "supervisor/worker_process.h"
#include "supervisor/zygote.h"

namespace kiln::supervisor {

class Supervisor : public PoolEnv {
 public:
  // `key` is the decoded build key.
  Supervisor(Options options, std::string key);
  ~Supervisor() override;

  // Sets up the loop, starts the pool and serves until shutdown; the exit status.
  int run();

  // PoolEnv
  Micros now() override;
  Expected<pid_t> start_worker(std::size_t slot) override;
  void send_job(std::size_t slot, const proto::Job& job) override;
  void send_shutdown(std::size_t slot) override;
  void send_cancel(std::size_t slot, uint64_t id) override;
  void signal_worker(std::size_t slot, int sig) override;
  void kill_group(pid_t pgid) override;
  uint64_t rss_kb(pid_t pid) override;
  void answer(ClientId client, proto::Result result) override;
  void status(ClientId client, const proto::Status& status) override;
  void started(ClientId client, const proto::Started& started) override;
  void trace_worker(std::size_t slot, pid_t pid, const std::string& what) override;
  // Starts writing the timeline to `file` (closing the one being written), or stops: the answer.
  proto::Traced retrace(const std::optional<std::string>& file);
  bool tracing() const override { return trace_ != nullptr; }
  void trace_job(const PoolJob& job, const proto::Result& result, std::optional<std::size_t> slot,
                 const PoolLoad& load) override;

 private:
  // A new connection, registered in clients_ and wired to this supervisor.
  ClientConnection& add_client();
  Expected<void> open_client_link();
  Expected<void> listen_socket();
  // A daemon with nothing to do: not shutting down, no open job, every client gone.
  bool idle() const;
  void watch_parent();
  void on_request(ClientConnection& client, proto::ClientRequest request);
  void on_client_end(ClientConnection& client);
  void on_signal(int signum);
  void begin_shutdown(bool drain, const std::string& why);
  // Kills and reaps our children that are not workers: what dead workers left behind.
  void end_orphans();
  // Slot `slot`'s process is done with: closed, and kept in released_ until its handles are.
  void release_process(std::size_t slot);
  // After every event: re-arm the deadline timer, and close every handle once the pool stopped.
  void after_event();
  // The zygotes run while the pool wants workers (not quiesced, not stopping).
  void run_zygotes_as_wanted();
  // The end: every handle of the loop closed, so that uv_run returns.
  void close_handles();
  proto::Hello hello() const;

  Options options_;
  std::string key_;
  std::string key_id_;
  std::vector<std::string> kinds_;
  ExecStrings worker_argv_;  // the same for every worker, built once
  ExecStrings worker_envp_;
  std::vector<ExecStrings> host_envp_;  // a distcc host's slots': worker_envp_ and the host
  std::vector<std::string> lanes_;      // each slot's lane on the timeline
  UniqueFd devnull_;  // the workers' stdin and stdout, opened once (-1 if it could not be)
  uv_loop_t loop_;
  std::unique_ptr<WorkerPool> pool_;
  std::vector<std::unique_ptr<Zygote>> zygotes_;  // --zygote, one per tool named
  Rules rules_;                   // signals, the end of a link, idle exit, stale events
  std::unique_ptr<Trace> trace_;  // --trace, or a client's `trace`
  std::string trace_file_;
  std::vector<std::unique_ptr<WorkerProcess>> workers_;  // the current process of each slot
  std::map<WorkerProcess*, std::unique_ptr<WorkerProcess>> released_;  // closing
  std::map<ClientId, std::unique_ptr<ClientConnection>> clients_;
  ClientId next_client_ = 1;
  uv_timer_t tick_;
  uv_signal_t signals_[4];  // SIGTERM, SIGINT, SIGHUP, SIGCHLD
  uv_poll_t parent_poll_;
  std::unique_ptr<SocketListener> listener_;  // --listen: the daemon's socket
  int parent_pidfd_ = -1;
  bool parent_watched_ = false;
  bool finished_ = false;
};

}  // namespace kiln::supervisor
