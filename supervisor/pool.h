// The pool's rules, without processes or an event loop: the job queue, dispatch, timeouts,
// cancels, crash accounting and restart backoff, quiesce, recycling, shutdown and stats. It acts
// on the world only through PoolEnv, and is told of the world through its on_* calls, so that
// tests drive it with a fake environment and a fake clock (ninja's builder and its fake command
// runner). The supervisor implements PoolEnv with libuv.
//
// A worker slot's life is one table, executed: WorkerPool's kLife in pool.cc has a row per state
// (empty, backoff, starting, idle, busy, stopping, killed, crashing, crashing-out), a column per
// event, and in each cell the step taken (WorkerPool::Step). The events are its worker's (ready,
// result, phase, a protocol error, gone, its deadline, its crash report begun) and the pool's
// commands (quiesce, wakeup and the start, a shutdown, the cancel of a job it holds, kill-all).
// Every one goes through WorkerPool::apply, which runs the cell's step: the entry points (on_ready,
// on_tick, quiesce, cancel, ...) only gather the event's data. A slot's state changes only in
// WorkerPool::set_state. tests/pool_test.cc (LifeTest) walks every cell. Every entry point but
// quiesce, a shutdown that does not drain and kill_all ends with advance().
//
// "stop" is a graceful `shutdown` (idle worker) or SIGTERM (busy worker); either way SIGKILL
// follows after the grace period, and the slot is restarted when the process is gone unless the
// pool is quiescing or shutting down. A busy worker may hold jobs sent ahead (pipelining): when
// it dies they go back to the queue; only the job it ran is answered worker_crashed.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/protocol.h"
#include "common/result.h"
#include "supervisor/histogram.h"
#include "supervisor/hosts.h"
#include "supervisor/job_queue.h"

namespace kiln::supervisor {

inline constexpr std::size_t kDefaultPipelineDepth = 8;
// A job is sent ahead only to a worker whose jobs are expected to take no longer than this in
// all (by the recent mean run time of their kinds, from the worker's run_us): a round trip is
// worth saving next to them, and a job sent ahead waits at most about that long for its worker
// while another may become free.
inline constexpr uint64_t kPipelineUpToUs = 2000;

struct PoolConfig {
  std::size_t workers = 1;
  uint64_t job_timeout_ms = 0;  // for submits without one; 0: none
  uint64_t grace_ms = 2000;
  // A worker (with its tools) that has not said `ready` this long after its start is stopped as
  // a failed start: a tool importing a large compiler stack may need more on a slow machine.
  uint64_t start_timeout_ms = 30000;
  uint64_t idle_quiesce_ms = 0;      // 0: never
  uint64_t max_jobs_per_worker = 0;  // 0: unlimited
  uint64_t max_worker_rss_kb = 0;    // 0: unlimited
  // Jobs a worker may hold at once: the one it runs and those sent ahead, so that it never waits
  // a round trip between two (1: none sent ahead). See kPipelineUpToUs and bench/NOTES.md.
  std::size_t pipeline_depth = kDefaultPipelineDepth;
  QueueLimits queue;  // jobs and payload bytes that may wait, in all and per connection
  uint64_t status_interval_ms = 10000;  // 0: never
  std::vector<std::string> kinds;
  std::string key_id;
  // distcc hosts: the pool's slots past `workers`, `limit` each (supervisor/hosts.h).
  std::vector<HostSpec> hosts;
};

// Restart backoff after failed starts: 10 ms, doubling, at most 5 s; after this many failed starts
// in a row the pool is unavailable until a worker starts again. A failed start is a worker that
// dies before `ready`, or that dies young: ends by a fault of its own (a crash, a dead tool, a
// protocol error) less than kYoungUs after its `ready` with no job to blame (a job that kills its
// worker is that job's failure). A second is s6's: it never respawns a service within a second of
// its start. The failures stop being "in a row" once a worker has lived kYoungUs past its ready.
inline constexpr Micros kBackoffFirstUs = 10'000;
inline constexpr Micros kBackoffMaxUs = 5'000'000;
inline constexpr int kUnavailableAfter = 5;
inline constexpr Micros kYoungUs = 1'000'000;

// How a worker process ended, with the last lines it wrote to stderr.
struct ExitInfo {
  int64_t exit_status = 0;
  int term_signal = 0;
  std::string stderr_tail;
};

// What the pool asks of the world.
class PoolEnv {
 public:
  virtual ~PoolEnv() = default;
  virtual Micros now() = 0;
  // Starts the worker process of `slot`: its pid, or why it could not be started (then no
  // on_gone follows; the pool treats it as a failed start).
  virtual Expected<pid_t> start_worker(std::size_t slot) = 0;
  virtual void send_job(std::size_t slot, const proto::Job& job) = 0;
  virtual void send_shutdown(std::size_t slot) = 0;
  // Asks the worker not to start job `id`, sent ahead: it answers not_started, or the job's result
  // if it had started it already.
  virtual void send_cancel(std::size_t slot, uint64_t id) = 0;
  virtual void signal_worker(std::size_t slot, int sig) = 0;
  virtual void kill_group(pid_t pgid) = 0;
  virtual uint64_t rss_kb(pid_t pid) = 0;
  virtual void answer(ClientId client, proto::Result result) = 0;
  virtual void status(ClientId client, const proto::Status& status) = 0;
  // A job submitted with notify_started has begun on a worker: the one it runs, not sent ahead.
  virtual void started(ClientId client, const proto::Started& started) = 0;
  // For a timeline (kiln-supervisor --trace), nothing by default: whether one is written (the
  // pool computes nothing for it otherwise), a worker slot's start, ready and end, and each
  // job's end: the slot that ran it (none if it never ran) and the load it leaves.
  virtual bool tracing() const { return false; }
  virtual void trace_worker(std::size_t /*slot*/, pid_t /*pid*/, const std::string& /*what*/) {}
  virtual void trace_job(const PoolJob& /*job*/, const proto::Result& /*result*/,
                         std::optional<std::size_t> /*slot*/, const PoolLoad& /*load*/) {}
};

class WorkerPool {
 public:
  WorkerPool(PoolConfig config, PoolEnv& env);

  // Spawns every worker (eagerly: warm before the first job).
  void start();

  enum class Submitted { kAccepted, kDuplicateId };
  // Every accepted submit gets exactly one answer, now or later. A duplicate unfinished id is not
  // accepted; the caller ends that client's connection.
  Submitted submit(ClientId client, proto::Submit submit);
  void cancel(ClientId client, uint64_t id);
  // The client's connection is gone: its queued jobs are dropped and its running ones killed.
  void client_gone(ClientId client);
  // The client is not reading its answers (paused) or reads them again: while paused its queued
  // jobs wait (others run), so what it has not read stays bounded.
  void client_paused(ClientId client, bool paused);
  void quiesce();
  void wakeup();
  void shutdown(bool drain);
  // The second SIGINT: SIGKILL to every worker now.
  void kill_all();

  void on_ready(std::size_t slot, const proto::Ready& ready);
  void on_result(std::size_t slot, proto::WorkerResult result);
  void on_phase(std::size_t slot, const proto::Phase& phase);
  void on_protocol_error(std::size_t slot, const std::string& why);
  // Its stderr said that its crash report has begun (common/crash_report.h).
  void on_crash_reported(std::size_t slot);
  // The process is gone: exited and reaped, its pipes drained.
  void on_gone(std::size_t slot, const ExitInfo& exit);
  // Acts on every deadline that has passed.
  void on_tick();
  std::optional<Micros> next_deadline() const;

  bool shutting_down() const { return mode_ != Mode::kRunning; }
  bool quiesced() const { return quiesced_; }
  // The pids of every worker's tools (from their `ready`s).
  std::vector<pid_t> tool_pids() const;
  // Shutdown is complete: no worker process is left.
  bool stopped() const;
  std::size_t open_jobs() const { return open_.size(); }
  // Local workers and every host's slots.
  std::size_t slot_count() const { return slots_.size(); }
  const Hosts& hosts() const { return hosts_; }
  proto::Stats stats() const;

  // The slot's life, executed from one table (pool.cc, kLife): a row per state, a column per
  // event, and in each cell the step apply() runs. Public for the test that walks every cell.
  //
  // kStopping: asked to stop (shutdown sent, SIGTERM or its own retire), SIGKILL at its
  // deadline; kKilled: SIGKILL sent, waiting for it to be gone. kCrashing: its crash handler
  // runs (a crash, not a stop: its job is answered worker_crashed when it is gone), SIGKILL at
  // its deadline if the report hangs. kCrashingOut: a stopping worker's crash handler runs: it
  // answers no job (what it holds goes back to the queue) and keeps its stop's deadline, but its
  // end, however it comes, is a crash: logged with its last words and counted.
  enum class State {
    kEmpty,
    kBackoff,
    kStarting,
    kIdle,
    kBusy,
    kStopping,
    kKilled,
    kCrashing,
    kCrashingOut,  // the last: kStates counts up to it
  };
  // The events of its worker (ready .. crash reported), then the pool's commands, each applied
  // to every slot (quiesce; wakeup, which is also the pool's start; a shutdown that does not
  // drain; kill-all), or to the slot that holds a job no longer wanted (cancel: its client
  // cancelled it or is gone).
  enum class Event {
    kReady,
    kResult,
    kPhase,
    kBrokeProtocol,
    kGone,
    kDeadline,
    kCrashReported,
    kQuiesce,
    kWakeup,
    kShutdown,
    kCancel,
    kKillAll,  // the last: kEvents counts up to it
  };
  static constexpr std::size_t kStates = static_cast<std::size_t>(State::kCrashingOut) + 1;
  static constexpr std::size_t kEvents = static_cast<std::size_t>(Event::kKillAll) + 1;
  enum class Step {
    kNone,            // cannot happen: no process, or no job it could be about (logged)
    kIgnore,          // nothing to do: the worker is on its way out, or the command is done
    kBecomeReady,     // -> idle (or stopping, if nothing is wanted of it)
    kSecondReady,     // a protocol error
    kTakeResult,      // the job's answer; the next job it holds starts
    kTakeLastResult,  // the job's answer from a worker on its way out: nothing more starts
    kNotePhase,       // the running job's progress
    kKillBroken,      // protocol error: its job answered, SIGKILL -> killed
    kEnded,           // its jobs answered or queued again; restart, back off or stay empty
    kStart,           // backoff over, or a wakeup: start a worker
    kStartTimeout,    // no ready in time: a failed start, SIGTERM -> stopping
    kJobClock,        // the running job's timeout backstop or its status interval
    kKillNow,         // did not stop in its grace period: SIGKILL -> killed
    kCrashing,        // its crash report began: -> crashing, with the report's time and a grace
    kKillCrashing,    // its crash report outran its deadline (a handler stuck in it): SIGKILL
    kCrashingOut,     // stopping, its crash report began: -> crashing-out (its end is a crash)
    kForget,          // the start waiting in backoff is not wanted: -> empty
    kRest,            // quiesce: stopped gracefully if nothing is queued -> stopping
    kStopGracefully,  // shutdown sent -> stopping
    kStopBusy,        // what it holds answered shutdown; SIGTERM -> stopping
    kFailHeld,        // what it holds answered shutdown, not queued again when it ends
    kKillOutright,    // what it holds answered shutdown; SIGKILL -> killed
    kUnwant,          // the job's worker stopped if it runs it (-> stopping), else told not to
    kLetGo,           // the job is dropped: its worker's end answers nothing of it
  };
  // The name of a slot's state (logs, the tests) and of an event (logs).
  const char* slot_state(std::size_t slot) const;
  static const char* event_name(Event event);

 private:
  static Step step(State state, Event event);
  // The pool's own course: running; draining (a `shutdown` with drain: no new jobs, the queue
  // still served); stopping (every job left is answered, every worker stopped).
  enum class Mode { kRunning, kDraining, kStopping };

  // How a worker's start went: pending until it says `ready`; failed when the pool stops it
  // before that for a fault of its own (a protocol error, the start timeout). A worker that ends
  // while pending without being asked to stop also failed to start.
  enum class Start { kPending, kReady, kFailed };
  using Job = PoolJob;
  // A job sent to a worker. A slot's first live one (neither settled nor recalled) is the job
  // its worker runs; the ones after it were sent ahead and run next, in order. Settled and
  // recalled ones stay until the worker's result or not_started for them arrives.
  struct Sent {
    Job job;          // without its payload, which is in `wire`
    proto::Job wire;  // what was sent, kept so that a job that did not run can be queued again
    // The pool is done with this entry: its client has had its answer (a cancel, a failure), or
    // the job is back in the queue (put_back). What the worker says of it is dropped.
    bool settled = false;
    bool recalled =
        false;  // asked back for a job of higher priority: queued again once not_started
    bool live() const { return !settled && !recalled; }
  };
  struct Slot {
    State state = State::kEmpty;
    pid_t pid = 0;
    uint64_t jobs = 0;
    std::deque<Sent> sent;
    pid_t job_group = 0;       // of the running job
    std::vector<pid_t> tools;  // its tools' pids, each leading its own group (from `ready`)
    std::string job_phase;
    // kBusy: timeout backstop (0: none); kStopping, kCrashing: SIGKILL (0: sent); kBackoff: start
    Micros deadline = 0;
    bool retiring = false;  // replaced once it holds no job; given no more
    Start start = Start::kPending;
    std::string start_failure;  // kFailed: what the fault was
    Micros ready_at = 0;        // kReady: when
    bool proven = false;  // it lived kYoungUs past its ready: the failures before are forgiven
    // It ends by a fault of its own with no job to blame: a retire for a dead tool, with its job
    // not started, or a protocol error outside a job.
    bool own_fault = false;
    Micros next_status = 0;
  };
  using OpenKey = std::pair<ClientId, uint64_t>;
  using Where = std::variant<JobQueue::Key, std::size_t>;  // queued, or running on a slot

  static const char* state_name(State state);
  bool wants_workers() const;
  // Whether a worker that is gone now is replaced (else its slot stays empty).
  bool replaces_ended() const;
  // True if some worker is up (idle or busy): then the pool serves, whatever other slots do.
  bool any_worker_up() const;
  // Logs, once per overload, that the queue has room again.
  void note_room();
  void start_slot(std::size_t slot);
  void schedule_restart(std::size_t slot, Micros delay);
  void dispatch();
  // How many more jobs `slot` may be sent now (see PoolConfig::pipeline_depth).
  std::size_t room(const Slot& s) const;
  // The recent mean run time of jobs of `kind` (a large number while none has run).
  uint64_t expected_run_us(const std::string& kind) const;
  // Sends queued jobs to `slot` while it has room, at most `most`, none after `hold` in the
  // queue's order.
  void fill(std::size_t slot, std::size_t most, const std::optional<QueueKey>& hold);
  // Asks back jobs sent ahead that a queued job of higher priority should start before; the
  // first in the queue's order of those not back yet.
  std::optional<QueueKey> recall_for_priority();
  void send_to(std::size_t slot, Job job);
  // The job `slot`'s worker runs now (or ran when it crashed), if any.
  static Sent* running(Slot& s);
  static const Sent* running(const Slot& s);
  // The state that follows what `slot` holds (busy or idle), and the start of the job it runs.
  void start_running(std::size_t slot);
  // A job sent that did not run goes back to the queue (or ends, when the pool is stopping).
  void put_back(Sent& sent);
  // Every job `slot` holds that is not answered yet ends with this error.
  void fail_sent(std::size_t slot, std::string_view code, const std::string& message);
  // Job `e` of `slot` is not wanted any more (its answer is the caller's): the worker is stopped
  // if it runs it, else asked not to start it.
  void unwant(std::size_t slot, Sent& e);
  static Sent* find_sent(Slot& s, ClientId client, uint64_t id);
  void note_run_time(const std::string& kind, uint64_t run_us);
  void stop(std::size_t slot, bool graceful);
  void answer_job(Job& job, bool ok, std::optional<proto::RawObject> value,
                  std::optional<proto::JobError> error, std::optional<pid_t> worker_pid);
  // The job's end on the timeline: the slot of the worker that ran it, and the load.
  void trace_end(const Job& job, const proto::Result& result);
  void fail(Job& job, std::string_view code, std::string message,
            std::optional<std::string> detail = std::nullopt,
            std::optional<pid_t> worker_pid = std::nullopt);
  void fail_queued(std::string_view code, const std::string& message,
                   const std::optional<std::string>& detail = std::nullopt);
  // A worker that said it ends after its result (retire): nothing more goes to it.
  void retire(std::size_t slot, const std::optional<proto::JobError>& error);
  uint64_t worker_rss_kb(const Slot& s) const;
  void after_job(std::size_t slot);
  // The step every entry point ends with: queued jobs to workers with room, the idle clock, and
  // the end of a draining shutdown.
  void advance();
  void idle_check();
  void maybe_finish_drain();
  // What an event brings: the data its event needs, the rest null.
  struct Input {
    const proto::Ready* ready = nullptr;    // kReady
    proto::WorkerResult* result = nullptr;  // kResult
    const proto::Phase* phase = nullptr;    // kPhase
    const std::string* why = nullptr;       // kBrokeProtocol
    const ExitInfo* exit = nullptr;         // kGone
    Micros now = 0;                         // kDeadline: the tick's time
    Sent* job = nullptr;                    // kCancel: the job not wanted any more
  };
  // Every event of a slot, its worker's or the pool's, goes through here: the step its cell in
  // kLife names is run.
  void apply(std::size_t slot, Event event, const Input& in);
  void apply(std::size_t slot, Event event);  // an event that brings nothing
  // The one place a slot's state changes. Entering empty, backoff or starting begins a new life:
  // nothing of the last worker is kept.
  void set_state(std::size_t slot, State next);
  static std::optional<Micros> due_at(const Slot& s);  // when its deadline event comes
  void become_ready(std::size_t slot, const proto::Ready& ready);
  // `last`: from a worker on its way out, which runs nothing more of ours.
  void take_result(std::size_t slot, proto::WorkerResult result, bool last);
  void note_phase(std::size_t slot, const proto::Phase& phase);
  void kill_broken(std::size_t slot, const std::string& why);
  void kill_now(std::size_t slot);
  void kill_late(std::size_t slot);  // kill_now, for a stop that outran its grace period
  void rest(std::size_t slot);
  void stop_busy(std::size_t slot);
  void kill_outright(std::size_t slot);
  void start_timeout(std::size_t slot);
  void crashing(std::size_t slot);
  void kill_crashing(std::size_t slot);
  void crashing_out(std::size_t slot);
  // What a crash report may take: the symbolizer's deadline and a grace period.
  Micros report_time() const;
  void job_clock(std::size_t slot, Micros now);
  void ended(std::size_t slot, const ExitInfo& exit);
  // What the worker of `slot`, gone (`what`), leaves: the job it ran answered worker_crashed, the
  // others it holds queued again, its job's group and (killed outright) its tools ended.
  void clear_remains(std::size_t slot, const ExitInfo& exit, const std::string& what);
  void note_start_failure(const std::string& why);
  // Marks the workers that have lived kYoungUs past their ready: failed starts before that are no
  // longer in a row.
  void note_proven();
  // Whether the worker of `s`, gone now, died young (see kYoungUs); `requested`: it ended as the
  // pool's stop or kill ends.
  bool died_young(const Slot& s, bool requested) const;
  Micros backoff_delay() const;
  // distcc hosts (pool_hosts.cc). Whether `slot`, a host's, may be given `job` now.
  bool host_takes(std::size_t slot, Job& job);
  // A host slot's answer for `e`: true if the job goes back to the queue to run elsewhere (the
  // host failed it, or distcc cannot compile it there), the host backed off if it failed.
  bool host_answered(std::size_t slot, Sent& e, const proto::WorkerResult& result);
  // stats.hosts, and the host of each host slot's worker in stats.worker_list.
  void add_host_stats(proto::Stats& st) const;

  PoolConfig config_;
  PoolEnv& env_;
  Hosts hosts_;
  std::vector<Slot> slots_;
  JobQueue queue_;
  std::map<OpenKey, Where> open_;
  Mode mode_ = Mode::kRunning;
  bool quiesced_ = false;
  Micros idle_since_ = 0;  // 0: not idle
  int start_failures_ = 0;
  uint64_t overloaded_since_room_ = 0;  // jobs answered overloaded since the queue was last full
  bool unavailable_ = false;
  std::string last_failure_;       // the last failed start, with the worker's last output
  std::string last_failure_line_;  // its one-line summary, for pool_unavailable's message
  Micros started_at_ = 0;
  bool priorities_differ_ = false;  // a job with a priority other than 0 was submitted

  // Stats.
  uint64_t jobs_submitted_ = 0, jobs_succeeded_ = 0, jobs_failed_ = 0;
  uint64_t worker_starts_ = 0, worker_crashes_ = 0, max_queue_depth_ = 0;
  Histogram queue_us_, run_us_;
  std::map<std::string, Micros, std::less<>> kind_run_us_;  // the recent mean run time per kind
};

}  // namespace kiln::supervisor
