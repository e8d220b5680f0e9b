// kiln::client::Pool: the C++ way into a pool. It starts kiln-supervisor with a socketpair as its
// client link (like PyTorch's SubprocPool starts its sidecar), or connects to a daemon's socket,
// and turns each submit into a future that the reader thread fulfils with the job's one result.
// Every call is safe from many threads. If the supervisor goes away, every open future is
// fulfilled with an error result (code "shutdown") and later submits fail the same way at once.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "client/daemon_link.h"
#include "client/exec_request.h"
#include "common/fd.h"
#include "common/frame.h"
#include "common/protocol.h"
#include "common/result.h"

namespace kiln::client {

struct PoolOptions {
  std::string socket;             // connect to this daemon instead of starting a supervisor
  std::string supervisor;         // "": find_supervisor()
  std::vector<std::string> args;  // extra supervisor options (--workers 4, ...)
  // Warm tools, NAME=COMMAND each (kiln-supervisor --tool): jobs of kind NAME run on them.
  std::vector<std::string> tools;
  std::vector<std::string> env;  // extra environment entries (KILN_KEY=...)
  // distcc hosts in DISTCC_HOSTS syntax (kiln-supervisor --distcc): compile jobs also run there.
  std::string distcc_hosts;
  // With `socket`: refuse a daemon whose hello names another build key (see key_id_from_env).
  std::optional<std::string> key_id;
};

class Pool {
 public:
  static constexpr const char* kUnreachable = client::kUnreachable;
  static constexpr const char* kRefused = client::kRefused;
  static constexpr const char* kStalled = client::kStalled;

  // Starts a supervisor and waits for its hello.
  static Expected<std::unique_ptr<Pool>> start(const PoolOptions& options);
  // Connects to a supervisor serving a Unix socket (--listen) and waits for its hello, at most
  // connect_timeout() (KILN_CONNECT_TIMEOUT_MS) for both, else fails with kStalled. Refuses,
  // before sending anything, a socket served by another user (SO_PEERCRED), and, after hello, a
  // supervisor whose key_id is not `key_id`: those fail with error_code() kRefused, and nobody
  // listening on the path with kUnreachable.
  static Expected<std::unique_ptr<Pool>> connect(
      const std::string& socket_path, const std::optional<std::string>& key_id = std::nullopt);
  // connect(options.socket) when a socket is given, else start(options).
  static Expected<std::unique_ptr<Pool>> open(const PoolOptions& options);
  // Done with the pool: a supervisor of our own is shut down, a daemon is left serving.
  void close();
  ~Pool();  // shuts the supervisor down (without drain) and waits for it

  const proto::Hello& hello() const { return link_.hello(); }

  std::future<proto::Result> submit(const std::string& kind, proto::RawObject payload,
                                    std::optional<uint64_t> timeout_ms = std::nullopt,
                                    std::optional<int64_t> priority = std::nullopt);
  // The same, with a callback run on the reader thread when the result arrives. Returns the id.
  // `on_status`, if given, runs on the reader thread each time the supervisor says the job is
  // still running (a `status`: every --status-interval-ms of its run), until its result.
  using Callback = std::function<void(proto::Result)>;
  using StatusCallback = std::function<void(const proto::Status&)>;
  uint64_t submit(const std::string& kind, proto::RawObject payload,
                  std::optional<uint64_t> timeout_ms, std::optional<int64_t> priority,
                  Callback on_result, StatusCallback on_status = nullptr);
  std::future<proto::Result> exec(const ExecRequest& request);
  void cancel(uint64_t id);
  void quiesce();
  void wakeup();
  // The supervisor's counters, asked now: an answer to this request or a later one. An error if
  // the supervisor is gone or does not answer within `timeout` (a stopped supervisor).
  Expected<proto::Stats> stats(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Starts the supervisor writing its timeline (Chrome Trace Event JSON) to `file`, or with
  // nullopt stops it: the supervisor's answer (the file now written, or why it could not).
  Expected<proto::Traced> trace(const std::optional<std::string>& file,
                                std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Asks the supervisor to stop (drain: finish queued jobs first) and waits for it to exit.
  // Returns its exit status (0 for a daemon reached through connect()).
  int shutdown(bool drain = false);
  // Ends this connection (to a daemon) without stopping the supervisor; open jobs are cancelled.
  void disconnect();

 private:
  Pool() = default;
  // Starts the reader thread on link_, which has read its hello.
  void attach();
  void read_loop();
  bool send_frame(const std::string& frame);
  // Sends a request answered in order (stats, trace), counted in `asked`, and waits until
  // `answered` counts its answer; `lock` then holds mu_, for reading the answer.
  Expected<void> ask(const std::string& frame, uint64_t& asked, const uint64_t& answered,
                     std::chrono::milliseconds timeout, std::unique_lock<std::mutex>& lock);
  void fail_open(const std::string& why);

  pid_t pid_ = -1;
  DaemonLink link_;
  // What the supervisor accepts: its --max-frame when we started it with one, else the default
  // (a daemon's own is not told; it refuses larger frames by ending the connection).
  uint32_t max_frame_ = kDefaultMaxFrame;
  std::thread reader_;
  mutable std::mutex mu_;
  std::condition_variable stats_cv_;
  struct Open {
    Callback on_result;
    StatusCallback on_status;
  };
  std::map<uint64_t, Open> open_;
  // Stats answers come in the order of the requests: the n-th request is answered by the n-th
  // answer. Only the latest is kept. (The condition variable serves both kinds of answer.)
  uint64_t stats_asked_ = 0;
  uint64_t stats_answered_ = 0;
  std::optional<proto::Stats> latest_stats_;
  // The same for trace requests and their `traced` answers.
  uint64_t traces_asked_ = 0;
  uint64_t traces_answered_ = 0;
  std::optional<proto::Traced> latest_traced_;
  uint64_t next_id_ = 1;
  bool gone_ = false;
  std::string gone_why_;
  std::optional<int> exit_status_;
  std::mutex write_mu_;  // taken before mu_ when both are held
};

}  // namespace kiln::client
