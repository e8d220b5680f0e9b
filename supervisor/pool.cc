#include "supervisor/pool.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <csignal>

#include "common/crash_report.h"
#include "common/exit_codes.h"
#include "common/fd.h"
#include "common/text.h"
#include "supervisor/job_name.h"

namespace kiln::supervisor {
namespace {

std::string describe_exit(pid_t pid, const ExitInfo& exit) {
  if (exit.term_signal != 0) {
    return "worker " + std::to_string(pid) + " was killed by " + signal_name(exit.term_signal);
  }
  return "worker " + std::to_string(pid) + " exited with status " +
         std::to_string(exit.exit_status);
}

// Whether a worker the pool asked to stop ended the way a stop ends: exited when told to (its
// watchdog's 128+SIGTERM for SIGTERM; kToolFailed when a dead tool retired it), or killed by the
// SIGTERM or SIGKILL it was sent. Anything else (a SIGSEGV, a protocol error's status) is a crash
// on its way out.
bool stop_explains(const ExitInfo& exit) {
  if (exit.term_signal != 0) return exit.term_signal == SIGTERM || exit.term_signal == SIGKILL;
  return exit.exit_status == exit_code::kOk || exit.exit_status == exit_code::kToolFailed ||
         exit.exit_status == exit_code::kSignalBase + SIGTERM;
}

constexpr const char* kShuttingDown = "the supervisor is shutting down";

std::string last_line(const std::string& text) {
  std::string t = text;
  while (!t.empty() && t.back() == '\n') t.pop_back();
  const auto nl = t.rfind('\n');
  return nl == std::string::npos ? t : t.substr(nl + 1);
}

}  // namespace

WorkerPool::WorkerPool(PoolConfig config, PoolEnv& env)
    : config_(std::move(config)),
      env_(env),
      hosts_(config_.hosts, config_.workers),
      slots_(config_.workers + hosts_.slots()),
      queue_(config_.queue) {}

std::vector<pid_t> WorkerPool::tool_pids() const {
  std::vector<pid_t> pids;
  for (const Slot& s : slots_) pids.insert(pids.end(), s.tools.begin(), s.tools.end());
  return pids;
}

bool WorkerPool::wants_workers() const { return mode_ != Mode::kStopping && !quiesced_; }

bool WorkerPool::replaces_ended() const {
  // A drain with nothing queued ends once the running jobs do: no worker is wanted for it.
  return wants_workers() && !(mode_ == Mode::kDraining && queue_.empty());
}

bool WorkerPool::any_worker_up() const {
  return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) {
    return s.state == State::kIdle || s.state == State::kBusy;
  });
}

Micros WorkerPool::backoff_delay() const {
  const int doublings = std::clamp(start_failures_ - 1, 0, 30);
  return std::min(kBackoffFirstUs << doublings, kBackoffMaxUs);
}

void WorkerPool::start() {
  started_at_ = env_.now();
  idle_since_ = started_at_;
  for (std::size_t i = 0; i < slots_.size(); ++i) apply(i, Event::kWakeup);
}

void WorkerPool::start_slot(std::size_t slot) {
  ++worker_starts_;
  Expected<pid_t> pid = env_.start_worker(slot);
  if (!pid) {
    spdlog::error("cannot start a worker: {}", pid.error());
    note_start_failure(pid.error());
    schedule_restart(slot, backoff_delay());
    return;
  }
  env_.trace_worker(slot, *pid, "worker started");
  set_state(slot, State::kStarting);
  Slot& s = slots_[slot];
  s.pid = *pid;
  s.deadline = env_.now() + config_.start_timeout_ms * 1000;
}

void WorkerPool::schedule_restart(std::size_t slot, Micros delay) {
  set_state(slot, State::kBackoff);
  slots_[slot].deadline = env_.now() + delay;
}

void WorkerPool::note_proven() {
  const Micros now = env_.now();
  for (Slot& s : slots_) {
    if (s.start == Start::kReady && !s.proven && now - s.ready_at >= kYoungUs) {
      s.proven = true;
      start_failures_ = 0;
    }
  }
}

bool WorkerPool::died_young(const Slot& s, bool requested) const {
  if (s.start != Start::kReady || s.proven || env_.now() - s.ready_at >= kYoungUs) return false;
  if (s.own_fault) return true;
  // A crash on the way out of a stop the pool asked for is not its own doing, nor is one that
  // a job it ran paid for.
  const bool stopped = s.state == State::kStopping || s.state == State::kCrashingOut;
  return !requested && !stopped && running(s) == nullptr;
}

void WorkerPool::note_start_failure(const std::string& why) {
  note_proven();
  ++start_failures_;
  last_failure_ = why;
  last_failure_line_ = last_line(why);
  // A slot that cannot start a worker is only a crash loop of the pool when no other worker is
  // up: while one serves, jobs wait for it instead of failing.
  if (start_failures_ >= kUnavailableAfter && !unavailable_ && !any_worker_up()) {
    unavailable_ = true;
    spdlog::error(
        "workers keep failing to start ({} times in a row); jobs end with pool_unavailable "
        "until one starts. The last failure: {}",
        start_failures_, why);
    fail_queued(proto::code::kPoolUnavailable,
                "workers keep failing to start: " + last_failure_line_, why);
  }
}

// ---- Client events ----

WorkerPool::Submitted WorkerPool::submit(ClientId client, proto::Submit submit) {
  const OpenKey key{client, submit.id};
  if (open_.count(key) != 0) return Submitted::kDuplicateId;
  ++jobs_submitted_;
  const uint64_t timeout =
      submit.timeout_ms.value_or(0) != 0 ? *submit.timeout_ms : config_.job_timeout_ms;
  Job job;
  job.client = client;
  job.id = submit.id;
  job.kind = std::move(submit.kind);
  job.payload = std::move(submit.payload);
  job.timeout_ms = timeout;
  job.notify_started = submit.notify_started.value_or(false);
  job.submitted = env_.now();
  if (mode_ != Mode::kRunning) {
    fail(job, proto::code::kShutdown, kShuttingDown);
    return Submitted::kAccepted;
  }
  if (std::find(config_.kinds.begin(), config_.kinds.end(), job.kind) == config_.kinds.end()) {
    fail(job, proto::code::kUnknownKind, "no worker serves kind \"" + job.kind + "\"");
    return Submitted::kAccepted;
  }
  if (submit.priority.value_or(0) != 0) priorities_differ_ = true;
  if (unavailable_) {
    fail(job, proto::code::kPoolUnavailable, "workers keep failing to start: " + last_failure_line_,
         last_failure_);
    return Submitted::kAccepted;
  }
  if (quiesced_) wakeup();
  idle_since_ = 0;
  // A job an idle worker takes at once never waits, so the queue's limits are not its business.
  const bool runs_now =
      !queue_.paused(client) && std::any_of(slots_.begin(), slots_.end(),
                                            [](const Slot& s) { return s.state == State::kIdle; });
  if (std::string full = runs_now ? "" : queue_.refuse(client, job.payload.bytes.size());
      !full.empty()) {
    // Said once per overload, not once per job: a flood must not become a flood of log lines.
    if (overloaded_since_room_++ == 0) {
      spdlog::warn("queue limit reached: new jobs are answered overloaded ({})", full);
    }
    fail(job, proto::code::kOverloaded, std::move(full));
    return Submitted::kAccepted;
  }
  note_room();
  open_[key] = queue_.push(std::move(job), submit.priority.value_or(0));
  max_queue_depth_ = std::max<uint64_t>(max_queue_depth_, queue_.size());
  advance();
  return Submitted::kAccepted;
}

void WorkerPool::cancel(ClientId client, uint64_t id) {
  const auto it = open_.find({client, id});
  if (it == open_.end()) return;  // unknown or finished: ignored
  if (const auto* qk = std::get_if<JobQueue::Key>(&it->second)) {
    Job job = std::move(*queue_.take(client, *qk));
    fail(job, proto::code::kCancelled, "cancelled by the client");
  } else {
    const std::size_t slot = std::get<std::size_t>(it->second);
    Slot& s = slots_[slot];
    Sent& e = *find_sent(s, client, id);
    fail(e.job, proto::code::kCancelled, "cancelled by the client", std::nullopt,
         &e == running(s) ? std::optional(s.pid) : std::nullopt);
    apply(slot, Event::kCancel, {.job = &e});
  }
  advance();
}

void WorkerPool::client_gone(ClientId client) {
  (void)queue_.take_client(client);  // nobody is left to answer
  for (auto it = open_.lower_bound({client, 0}); it != open_.end() && it->first.first == client;) {
    if (std::holds_alternative<std::size_t>(it->second)) {
      const std::size_t slot = std::get<std::size_t>(it->second);
      apply(slot, Event::kCancel, {.job = find_sent(slots_[slot], client, it->first.second)});
    }
    ++jobs_failed_;
    it = open_.erase(it);
  }
  advance();
}

void WorkerPool::client_paused(ClientId client, bool paused) {
  queue_.set_paused(client, paused);
  advance();
}

void WorkerPool::quiesce() {
  if (mode_ != Mode::kRunning) return;
  quiesced_ = true;
  idle_since_ = 0;
  for (std::size_t i = 0; i < slots_.size(); ++i) apply(i, Event::kQuiesce);
}

void WorkerPool::wakeup() {
  if (mode_ != Mode::kRunning) return;
  quiesced_ = false;
  for (std::size_t i = 0; i < slots_.size(); ++i) apply(i, Event::kWakeup);
  advance();
}

void WorkerPool::shutdown(bool drain) {
  if (mode_ == Mode::kStopping) return;
  if (drain) {
    // No slot changes now: each stops when it has nothing left to run, and the drain ends as
    // this shutdown once none is busy (maybe_finish_drain).
    mode_ = Mode::kDraining;
    advance();
    return;
  }
  mode_ = Mode::kStopping;
  fail_queued(proto::code::kShutdown, kShuttingDown);
  for (std::size_t i = 0; i < slots_.size(); ++i) apply(i, Event::kShutdown);
}

void WorkerPool::kill_all() {
  for (std::size_t i = 0; i < slots_.size(); ++i) apply(i, Event::kKillAll);
}

// ---- The slot's life ----

namespace {

using St = WorkerPool::Step;
using Row = std::array<WorkerPool::Step, WorkerPool::kEvents>;

// A row of kLife: exactly one step per event.
template <typename... Steps>
constexpr Row row(Steps... steps) {
  static_assert(sizeof...(Steps) == WorkerPool::kEvents, "a row has a step for every event");
  return Row{steps...};
}

// One row per state, one column per event; each cell names the step apply() runs
// (WorkerPool::Step). kNone: the event cannot come in that state (there is no process, or no job it
// could be about; the supervisor drops the events of a process that is no longer its slot's). The
// first seven columns are the worker's events, the last five the pool's commands (each row takes
// two lines). A quiesced worker that is starting or busy stops once ready or done (become_ready,
// after_job); a shutdown leaves a crashing worker's job to its end, which answers it worker_crashed
// with the report.
// clang-format off
constexpr Row kLife[] = {
    //   worker:         ready             result               phase           broke            gone        deadline           crash report
    //   commands:       quiesce      wakeup       shutdown             cancel       kill-all
    /* empty      */ row(St::kNone,        St::kNone,           St::kNone,      St::kNone,       St::kNone,  St::kNone,         St::kNone,
                         St::kIgnore, St::kStart,  St::kIgnore,         St::kNone,   St::kIgnore),
    /* backoff    */ row(St::kNone,        St::kNone,           St::kNone,      St::kNone,       St::kNone,  St::kStart,        St::kNone,
                         St::kForget, St::kIgnore, St::kForget,         St::kNone,   St::kForget),
    /* starting   */ row(St::kBecomeReady, St::kTakeResult,     St::kNotePhase, St::kKillBroken, St::kEnded, St::kStartTimeout, St::kCrashing,
                         St::kIgnore, St::kIgnore, St::kStopGracefully, St::kNone,   St::kKillOutright),
    /* idle       */ row(St::kSecondReady, St::kTakeResult,     St::kNotePhase, St::kKillBroken, St::kEnded, St::kNone,         St::kCrashing,
                         St::kRest,   St::kIgnore, St::kStopGracefully, St::kUnwant, St::kKillOutright),
    /* busy       */ row(St::kSecondReady, St::kTakeResult,     St::kNotePhase, St::kKillBroken, St::kEnded, St::kJobClock,     St::kCrashing,
                         St::kIgnore, St::kIgnore, St::kStopBusy,       St::kUnwant, St::kKillOutright),
    /* stopping   */ row(St::kIgnore,      St::kTakeLastResult, St::kIgnore,    St::kKillBroken, St::kEnded, St::kKillNow,      St::kCrashingOut,
                         St::kIgnore, St::kIgnore, St::kFailHeld,       St::kLetGo,  St::kKillOutright),
    /* killed     */ row(St::kIgnore,      St::kTakeLastResult, St::kIgnore,    St::kIgnore,     St::kEnded, St::kNone,         St::kIgnore,
                         St::kIgnore, St::kIgnore, St::kFailHeld,       St::kLetGo,  St::kIgnore),
    /* crashing   */ row(St::kIgnore,      St::kTakeLastResult, St::kIgnore,    St::kIgnore,     St::kEnded, St::kKillCrashing, St::kIgnore,
                         St::kIgnore, St::kIgnore, St::kIgnore,         St::kLetGo,  St::kKillOutright),
    /* crash-out  */ row(St::kIgnore,      St::kTakeLastResult, St::kIgnore,    St::kIgnore,     St::kEnded, St::kKillCrashing, St::kIgnore,
                         St::kIgnore, St::kIgnore, St::kFailHeld,       St::kLetGo,  St::kKillOutright),
};
// clang-format on

// The one table of names: each state's (logs, the tests) and how stats' worker_list shows it.
struct StateName {
  const char* name;
  const char* shown;
};
constexpr StateName kStateNames[] = {
    {"empty", "stopped"},   {"backoff", "backoff"},   {"starting", "starting"},
    {"idle", "idle"},       {"busy", "busy"},         {"stopping", "stopping"},
    {"killed", "stopping"}, {"crashing", "stopping"}, {"crashing-out", "stopping"},
};
constexpr const char* kEventNames[] = {
    "ready",          "result",  "phase",  "broke-protocol", "gone",   "deadline",
    "crash-reported", "quiesce", "wakeup", "shutdown",       "cancel", "kill-all",
};
static_assert(std::size(kLife) == WorkerPool::kStates, "kLife has a row for every state");
static_assert(std::size(kStateNames) == WorkerPool::kStates, "every state has a name");
static_assert(std::size(kEventNames) == WorkerPool::kEvents, "every event has a name");

constexpr std::size_t index(WorkerPool::State s) { return static_cast<std::size_t>(s); }
constexpr std::size_t index(WorkerPool::Event e) { return static_cast<std::size_t>(e); }

}  // namespace

WorkerPool::Step WorkerPool::step(State state, Event event) {
  return kLife[index(state)][index(event)];
}

const char* WorkerPool::state_name(State state) { return kStateNames[index(state)].name; }

const char* WorkerPool::event_name(Event event) { return kEventNames[index(event)]; }

const char* WorkerPool::slot_state(std::size_t slot) const {
  return state_name(slots_[slot].state);
}

void WorkerPool::set_state(std::size_t slot, State next) {
  Slot& s = slots_[slot];
  spdlog::trace("slot {}: {} -> {}", slot, state_name(s.state), state_name(next));
  // A new life begins empty, in backoff or starting: nothing of the last worker is kept.
  if (next == State::kEmpty || next == State::kBackoff || next == State::kStarting) s = Slot{};
  s.state = next;
}

void WorkerPool::apply(std::size_t slot, Event event) { apply(slot, event, Input{}); }

void WorkerPool::apply(std::size_t slot, Event event, const Input& in) {
  const Step st = step(slots_[slot].state, event);
  switch (st) {
    case Step::kNone:
      return spdlog::debug("slot {}: event {} in state {} ignored", slot, event_name(event),
                           slot_state(slot));
    case Step::kIgnore:
      return;
    case Step::kBecomeReady:
      return become_ready(slot, *in.ready);
    case Step::kSecondReady:
      return kill_broken(slot, "a second ready");
    case Step::kTakeResult:
      return take_result(slot, std::move(*in.result), /*last=*/false);
    case Step::kTakeLastResult:
      return take_result(slot, std::move(*in.result), /*last=*/true);
    case Step::kNotePhase:
      return note_phase(slot, *in.phase);
    case Step::kKillBroken:
      return kill_broken(slot, *in.why);
    case Step::kEnded:
      return ended(slot, *in.exit);
    case Step::kStart:
      return start_slot(slot);
    case Step::kStartTimeout:
      return start_timeout(slot);
    case Step::kJobClock:
      return job_clock(slot, in.now);
    case Step::kKillNow:
      return kill_late(slot);
    case Step::kCrashing:
      return crashing(slot);
    case Step::kKillCrashing:
      return kill_crashing(slot);
    case Step::kCrashingOut:
      return crashing_out(slot);
    case Step::kForget:
      return set_state(slot, State::kEmpty);
    case Step::kRest:
      return rest(slot);
    case Step::kStopGracefully:
      return stop(slot, /*graceful=*/true);
    case Step::kStopBusy:
      return stop_busy(slot);
    case Step::kFailHeld:
      return fail_sent(slot, proto::code::kShutdown, kShuttingDown);
    case Step::kKillOutright:
      return kill_outright(slot);
    case Step::kUnwant:
      return unwant(slot, *in.job);
    case Step::kLetGo:
      // Its worker's end answers for nothing of it now. A crashing worker is left to finish its
      // report: its crash is still a crash, logged with its last words and counted when it ends
      // (by itself, or killed at the report's deadline); what else it holds goes back to the
      // queue then.
      in.job->settled = true;
      return;
  }
}

void WorkerPool::on_ready(std::size_t slot, const proto::Ready& ready) {
  apply(slot, Event::kReady, {.ready = &ready});
  advance();
}

void WorkerPool::on_result(std::size_t slot, proto::WorkerResult result) {
  apply(slot, Event::kResult, {.result = &result});
  advance();
}

void WorkerPool::on_phase(std::size_t slot, const proto::Phase& phase) {
  apply(slot, Event::kPhase, {.phase = &phase});
  advance();
}

void WorkerPool::on_protocol_error(std::size_t slot, const std::string& why) {
  apply(slot, Event::kBrokeProtocol, {.why = &why});
  advance();
}

void WorkerPool::on_crash_reported(std::size_t slot) {
  apply(slot, Event::kCrashReported);
  advance();
}

void WorkerPool::on_gone(std::size_t slot, const ExitInfo& exit) {
  apply(slot, Event::kGone, {.exit = &exit});
  advance();
}

void WorkerPool::on_tick() {
  const Micros now = env_.now();
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const std::optional<Micros> due = due_at(slots_[i]);
    if (due && now >= *due) apply(i, Event::kDeadline, {.now = now});
  }
  if (config_.idle_quiesce_ms != 0 && idle_since_ != 0 && mode_ == Mode::kRunning && !quiesced_ &&
      now >= idle_since_ + config_.idle_quiesce_ms * 1000) {
    spdlog::info("no job for {} ms: stopping the workers until the next job",
                 config_.idle_quiesce_ms);
    quiesce();
  }
  advance();
}

std::optional<Micros> WorkerPool::due_at(const Slot& s) {
  switch (s.state) {
    case State::kBackoff:
    case State::kStarting:
    case State::kStopping:
      return s.deadline;
    case State::kCrashing:
    case State::kCrashingOut:
      return s.deadline != 0 ? std::optional(s.deadline) : std::nullopt;
    case State::kBusy: {
      std::optional<Micros> due;
      if (s.deadline != 0) due = s.deadline;
      if (s.next_status != 0 && (!due || s.next_status < *due)) due = s.next_status;
      return due;
    }
    case State::kEmpty:
    case State::kIdle:
    case State::kKilled:
      break;
  }
  return std::nullopt;
}

std::optional<Micros> WorkerPool::next_deadline() const {
  std::optional<Micros> next;
  auto consider = [&next](std::optional<Micros> t) {
    if (t && (!next || *t < *next)) next = t;
  };
  for (const Slot& s : slots_) consider(due_at(s));
  if (config_.idle_quiesce_ms != 0 && idle_since_ != 0 && mode_ == Mode::kRunning && !quiesced_) {
    consider(idle_since_ + config_.idle_quiesce_ms * 1000);
  }
  return next;
}

// ---- The cells ----

void WorkerPool::become_ready(std::size_t slot, const proto::Ready& ready) {
  Slot& s = slots_[slot];
  if (ready.key_id != config_.key_id) {
    const std::string why = "its key_id " + ready.key_id + " is not the supervisor's " +
                            config_.key_id + " (a worker of another build)";
    return apply(slot, Event::kBrokeProtocol, {.why = &why});
  }
  set_state(slot, State::kIdle);
  s.start = Start::kReady;
  s.ready_at = env_.now();
  s.deadline = 0;
  if (ready.tools) s.tools.assign(ready.tools->begin(), ready.tools->end());
  env_.trace_worker(slot, s.pid, "ready");
  // The failures in a row end when this worker has lived a while (note_proven), not now: one that
  // dies at once after its ready is a failed start too.
  if (unavailable_) {
    unavailable_ = false;
    spdlog::info("a worker started again: the pool is available");
  }
  if (queue_.empty() && (quiesced_ || mode_ == Mode::kDraining)) stop(slot, /*graceful=*/true);
}

void WorkerPool::take_result(std::size_t slot, proto::WorkerResult result, bool last) {
  Slot& s = slots_[slot];
  // Results come in the order the jobs were sent.
  if (s.sent.empty() || s.sent.front().job.id != result.id) {
    const std::string why =
        "a result for job " + std::to_string(result.id) + ", which it was not running";
    return apply(slot, Event::kBrokeProtocol, {.why = &why});
  }
  const bool not_started =
      !result.ok && result.error && result.error->code == proto::code::kNotStarted;
  const bool retiring = result.retire.value_or(false);
  if (not_started && s.sent.front().live() && !retiring) {
    const std::string why =
        "not_started for job " + std::to_string(result.id) + ", which it was not asked to leave";
    return apply(slot, Event::kBrokeProtocol, {.why = &why});
  }
  const bool was_running = running(s) == &s.sent.front();
  Sent e = std::move(s.sent.front());
  s.sent.pop_front();
  if (was_running) {
    s.job_group = 0;
    s.job_phase.clear();
  }
  const std::optional<proto::JobError> error = retiring ? result.error : std::nullopt;
  if (not_started) {
    if (!e.settled) put_back(e);
  } else if (!e.settled && !host_answered(slot, e, result)) {
    ++s.jobs;
    note_run_time(e.job.kind, result.run_us);
    answer_job(e.job, result.ok, std::move(result.value), std::move(result.error), s.pid);
  }
  // Its last result (stopping or crashing): it runs nothing more of ours; what it does not run
  // goes back to the queue.
  if (last) return;
  if (retiring) {
    retire(slot, error);
  } else {
    after_job(slot);
  }
}

void WorkerPool::retire(std::size_t slot, const std::optional<proto::JobError>& error) {
  Slot& s = slots_[slot];
  // A job it did not start paid nothing for its end: the end is its own.
  if (error && error->code == proto::code::kNotStarted) s.own_fault = true;
  if (error && error->code == proto::code::kWorkerCrashed) {
    ++worker_crashes_;
    spdlog::warn("worker {}: {}", s.pid, error->message);
  } else {
    spdlog::info("worker {} ends after its job ({}); replacing it", s.pid,
                 error ? error->message : "it said so");
  }
  // It exits by itself; SIGKILL after the grace period if it does not.
  set_state(slot, State::kStopping);
  s.deadline = env_.now() + config_.grace_ms * 1000;
}

void WorkerPool::note_phase(std::size_t slot, const proto::Phase& phase) {
  Slot& s = slots_[slot];
  const auto it = std::find_if(s.sent.begin(), s.sent.end(),
                               [&phase](const Sent& e) { return e.job.id == phase.id; });
  if (it == s.sent.end()) {
    const std::string why =
        "a phase for job " + std::to_string(phase.id) + ", which it was not running";
    return apply(slot, Event::kBrokeProtocol, {.why = &why});
  }
  // A job it was asked not to start may have started already: its phases do not matter.
  if (&*it != running(s)) return;
  // Bounded as the worker bounds a tool's (a phase it cut keeps its marker, "... (N bytes)", at
  // most 32 bytes): the phase goes into every status and stats reply.
  constexpr std::size_t kMarkerBytes = 32;
  s.job_phase = phase.phase.size() <= proto::kMaxPhaseBytes + kMarkerBytes
                    ? phase.phase
                    : shortened(phase.phase, proto::kMaxPhaseBytes);
  if (phase.phase == "spawned" && phase.pgid) s.job_group = static_cast<pid_t>(*phase.pgid);
}

void WorkerPool::kill_broken(std::size_t slot, const std::string& why) {
  Slot& s = slots_[slot];
  spdlog::error("worker {} broke the worker link protocol: {}; killing it", s.pid, why);
  Sent* const r = running(s);
  if (r != nullptr) {
    r->settled = true;
    fail(r->job, proto::code::kWorkerProtocolError,
         "worker " + std::to_string(s.pid) + " broke the protocol: " + why, std::nullopt, s.pid);
  }
  if (s.start == Start::kPending) {
    s.start = Start::kFailed;
    s.start_failure = "worker " + std::to_string(s.pid) + " broke the protocol: " + why;
  } else if (r == nullptr) {
    s.own_fault = true;
  }
  kill_now(slot);
}

void WorkerPool::kill_now(std::size_t slot) {
  Slot& s = slots_[slot];
  env_.signal_worker(slot, SIGKILL);
  if (s.job_group != 0) env_.kill_group(s.job_group);
  set_state(slot, State::kKilled);
}

void WorkerPool::kill_late(std::size_t slot) {
  spdlog::warn("worker {} did not stop within {} ms; SIGKILL", slots_[slot].pid, config_.grace_ms);
  kill_now(slot);
}

void WorkerPool::rest(std::size_t slot) {
  // With jobs queued it takes one first, and stops when none is left (after_job).
  if (queue_.empty()) stop(slot, /*graceful=*/true);
}

void WorkerPool::stop_busy(std::size_t slot) {
  fail_sent(slot, proto::code::kShutdown, kShuttingDown);
  stop(slot, /*graceful=*/false);
}

void WorkerPool::kill_outright(std::size_t slot) {
  fail_sent(slot, proto::code::kShutdown, kShuttingDown);
  kill_now(slot);
}

void WorkerPool::crashing(std::size_t slot) {
  Slot& s = slots_[slot];
  // What it runs is the job it crashed in; what it was sent ahead waits for its end.
  set_state(slot, State::kCrashing);
  s.deadline = env_.now() + report_time();
}

void WorkerPool::kill_crashing(std::size_t slot) {
  Slot& s = slots_[slot];
  if (s.state == State::kCrashing) {
    spdlog::warn("worker {} began a crash report and has not ended {} ms later; killing it", s.pid,
                 report_time() / 1000);
  } else {
    spdlog::warn("worker {} crashed as it was stopping and has not ended within {} ms; killing it",
                 s.pid, config_.grace_ms);
  }
  env_.signal_worker(slot, SIGKILL);
  s.deadline = 0;  // it stays as it is: its end is a crash (answering its job, if crashing)
}

void WorkerPool::crashing_out(std::size_t slot) {
  // The deadline stays its stop's: a shutdown's --grace-ms bounds it, report or not.
  set_state(slot, State::kCrashingOut);
}

Micros WorkerPool::report_time() const {
  return (static_cast<Micros>(crash_report::kSymbolizeDeadlineMs) + config_.grace_ms) * 1000;
}

void WorkerPool::start_timeout(std::size_t slot) {
  Slot& s = slots_[slot];
  spdlog::error("worker {} did not say ready within {} ms (--start-timeout-ms); stopping it", s.pid,
                config_.start_timeout_ms);
  s.start = Start::kFailed;
  s.start_failure = "worker " + std::to_string(s.pid) + " did not say ready within " +
                    std::to_string(config_.start_timeout_ms) + " ms (--start-timeout-ms)";
  stop(slot, /*graceful=*/false);
}

void WorkerPool::job_clock(std::size_t slot, Micros now) {
  Slot& s = slots_[slot];
  Sent& r = *running(s);
  if (s.deadline != 0 && now >= s.deadline) {
    r.settled = true;
    fail(r.job, proto::code::kTimeout,
         "the job ran past its timeout of " + std::to_string(r.job.timeout_ms) + " ms",
         std::nullopt, s.pid);
    stop(slot, /*graceful=*/false);
    return;
  }
  const Micros interval = config_.status_interval_ms * 1000;
  env_.status(r.job.client,
              proto::Status{
                  r.job.id, (now - r.job.started) / 1000, static_cast<uint64_t>(s.pid),
                  s.job_phase.empty() ? std::optional<std::string>() : std::optional(s.job_phase)});
  while (s.next_status <= now) s.next_status += interval;
}

void WorkerPool::clear_remains(std::size_t slot, const ExitInfo& exit, const std::string& what) {
  Slot& s = slots_[slot];
  // The job it ran dies with it; what it was sent ahead, or holds while the pool stopped it for
  // another job's sake, had no part in that and goes back to the queue. A worker that ends with
  // kToolFailed found a tool unfit between jobs and started none of those it holds (the one it
  // ran when a tool failed was answered, with `retire`): even the one sent last goes back.
  const bool started_none = exit.term_signal == 0 && exit.exit_status == exit_code::kToolFailed;
  Sent* const r = started_none ? nullptr : running(s);
  for (Sent& e : s.sent) {
    if (e.settled) continue;
    if (&e == r) {
      e.settled = true;
      fail(e.job, proto::code::kWorkerCrashed, what, exit.stderr_tail, s.pid);
    } else {
      put_back(e);
    }
  }
  if (s.job_group != 0) env_.kill_group(s.job_group);
  // A worker killed outright stopped none of its tools: what they started is ended here. (One
  // that exited stopped and reaped them itself; their pids may be another's by now.)
  if (exit.term_signal != 0) {
    for (const pid_t tool : s.tools) env_.kill_group(tool);
  }
  s.tools.clear();  // the orphan sweep spares only the tools of workers that live
}

void WorkerPool::ended(std::size_t slot, const ExitInfo& exit) {
  Slot& s = slots_[slot];
  const pid_t pid = s.pid;
  const bool stopping = s.state == State::kStopping || s.state == State::kCrashingOut;
  const bool requested =
      s.state == State::kKilled || (s.state == State::kStopping && stop_explains(exit));
  // Stopped by the pool before `ready` (a quiesce, a shutdown) is no failed start; dying young
  // after it is one (kYoungUs).
  note_proven();
  const bool young = died_young(s, requested);
  const bool failed_start =
      s.start == Start::kFailed || (s.start == Start::kPending && !requested) || young;
  const std::string what = describe_exit(pid, exit);
  env_.trace_worker(slot, pid, (requested ? "ended: " : "crashed: ") + what);
  clear_remains(slot, exit, what);
  if (!requested) {
    ++worker_crashes_;
    const char* const when = stopping ? "as it was stopping" : "unexpectedly";
    if (exit.stderr_tail.empty()) {
      spdlog::warn("{} {}", what, when);
    } else {
      spdlog::warn("{} {}; its last words:\n{}", what, when, exit.stderr_tail);
    }
  }
  // Why the pool stopped it, if it did; then what its stderr said last.
  std::string failure = s.start == Start::kFailed ? s.start_failure
                        : young                   ? what + " less than a second after its ready"
                                                  : what;
  if (!exit.stderr_tail.empty()) failure += ": " + exit.stderr_tail;
  const std::optional<std::string> summary =
      s.start == Start::kFailed ? std::optional(s.start_failure) : std::nullopt;
  const bool restart = replaces_ended();
  // Not up any more: with no other worker up, failed starts make the pool unavailable.
  set_state(slot, State::kEmpty);
  if (failed_start) {
    note_start_failure(failure);
    if (summary) last_failure_line_ = *summary;
  }
  if (restart && failed_start) {
    schedule_restart(slot, backoff_delay());
  } else if (restart) {
    start_slot(slot);
  }
}

bool WorkerPool::stopped() const {
  return mode_ == Mode::kStopping && std::all_of(slots_.begin(), slots_.end(), [](const Slot& s) {
           return s.state == State::kEmpty;
         });
}

// ---- Internals ----

void WorkerPool::dispatch() {
  if (mode_ == Mode::kStopping) return;
  const std::optional<QueueKey> hold = priorities_differ_ ? recall_for_priority() : std::nullopt;
  // Idle workers first, a job each; then jobs sent ahead to workers with room.
  for (std::size_t i = 0; i < slots_.size() && !queue_.empty(); ++i) {
    if (slots_[i].state == State::kIdle) fill(i, 1, hold);
  }
  for (std::size_t i = 0; i < slots_.size() && !queue_.empty(); ++i) {
    fill(i, config_.pipeline_depth, hold);
  }
  note_room();
}

std::size_t WorkerPool::room(const Slot& s) const {
  if ((s.state != State::kIdle && s.state != State::kBusy) || s.retiring) return 0;
  // A job sent ahead waits for what its worker holds: about the recent run times of their kinds.
  std::size_t live = 0;
  uint64_t wait_us = 0;
  for (const Sent& e : s.sent) {
    if (!e.live()) continue;
    ++live;
    wait_us += expected_run_us(e.job.kind);
  }
  // A host's slot holds one job: distcc never queues one where the pool cannot see it.
  const bool host = hosts_.host_of(static_cast<std::size_t>(&s - slots_.data())).has_value();
  uint64_t depth = (live == 0 || wait_us <= kPipelineUpToUs) && !host ? config_.pipeline_depth : 1;
  if (config_.max_jobs_per_worker != 0) {
    depth = std::min(depth,
                     config_.max_jobs_per_worker - std::min(s.jobs, config_.max_jobs_per_worker));
  }
  return depth > live ? depth - live : 0;
}

uint64_t WorkerPool::expected_run_us(const std::string& kind) const {
  const auto it = kind_run_us_.find(kind);
  return it != kind_run_us_.end() ? it->second : UINT64_MAX / 64;  // unknown: not short
}

void WorkerPool::note_run_time(const std::string& kind, uint64_t run_us) {
  const auto [it, first] = kind_run_us_.try_emplace(kind, run_us);
  if (!first) it->second = (it->second * 7 + run_us) / 8;
}

void WorkerPool::fill(std::size_t slot, std::size_t most, const std::optional<QueueKey>& hold) {
  // A draining shutdown must finish every job, read or not.
  const bool ignore_pauses = mode_ == Mode::kDraining;
  for (std::size_t n = 0; n < most && room(slots_[slot]) > 0; ++n) {
    std::optional<Job> job = queue_.pop(ignore_pauses);
    if (!job) return;
    // Job ids are the clients' own: two clients' jobs of one id never share a worker's link.
    // A job recalled and not yet back in the queue keeps its place before the jobs after it.
    if ((hold && *hold < job->key) || !host_takes(slot, *job) ||
        std::any_of(slots_[slot].sent.begin(), slots_[slot].sent.end(),
                    [&job](const Sent& e) { return e.job.id == job->id; })) {
      queue_.put_back(std::move(*job));
      return;
    }
    send_to(slot, std::move(*job));
  }
}

std::optional<QueueKey> WorkerPool::recall_for_priority() {
  const std::optional<int64_t> top = queue_.top_priority();
  // Every job sent ahead that would start before the queue's first with a lower priority is
  // asked back: it returns to the queue when its worker says not_started.
  std::optional<QueueKey> first;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Sent* r = running(slots_[i]);
    for (Sent& e : slots_[i].sent) {
      if (top && e.live() && &e != r && -e.job.key.neg_priority < *top) {
        e.recalled = true;
        env_.send_cancel(i, e.job.id);
      }
      if (e.recalled && !e.settled && (!first || e.job.key < *first)) first = e.job.key;
    }
  }
  return first;
}

void WorkerPool::send_to(std::size_t slot, Job job) {
  Slot& s = slots_[slot];
  job.name = job_name(job.kind, job.payload);
  open_[{job.client, job.id}] = slot;
  Sent& e = s.sent.emplace_back();
  // The payload's bytes go to the worker as they came; they come back only if it does not run it.
  e.wire = proto::Job{job.id, job.kind, std::move(job.payload), job.timeout_ms};
  e.job = std::move(job);
  env_.send_job(slot, e.wire);
  start_running(slot);
}

WorkerPool::Sent* WorkerPool::running(Slot& s) {
  return const_cast<Sent*>(running(static_cast<const Slot&>(s)));
}

const WorkerPool::Sent* WorkerPool::running(const Slot& s) {
  if ((s.state != State::kBusy && s.state != State::kCrashing) || s.sent.empty()) return nullptr;
  // The worker runs its jobs in the order they were sent, and one it was asked not to start (a
  // cancel, a recall) it may have started already: only the first job sent is known to be the
  // one it runs, and only while it is still wanted. Until that first one's answer comes, no job
  // is timed as running, and none is blamed if the worker dies or breaks the link: the jobs
  // behind it go back to the queue.
  return s.sent.front().live() ? &s.sent.front() : nullptr;
}

void WorkerPool::start_running(std::size_t slot) {
  Slot& s = slots_[slot];
  set_state(slot, std::any_of(s.sent.begin(), s.sent.end(), [](const Sent& e) { return e.live(); })
                      ? State::kBusy
                      : State::kIdle);
  Sent* r = running(s);
  if (r == nullptr) {
    s.deadline = 0;
    s.next_status = 0;
    return;
  }
  if (r->job.started != 0) return;
  const Micros now = env_.now();
  r->job.started = now;
  // The backstop, for a worker that does not enforce the timeout itself: that one sends SIGTERM
  // at the timeout and SIGKILL a grace period later, and needs time to say so.
  s.deadline = r->job.timeout_ms != 0 ? now + (r->job.timeout_ms + 2 * config_.grace_ms) * 1000 : 0;
  s.next_status = config_.status_interval_ms != 0 ? now + config_.status_interval_ms * 1000 : 0;
  s.job_group = 0;
  s.job_phase.clear();
  if (r->job.notify_started) {
    env_.started(r->job.client, proto::Started{r->job.id, static_cast<uint64_t>(s.pid)});
  }
}

void WorkerPool::put_back(Sent& e) {
  e.settled = true;  // the job lives on in the queue
  e.job.payload = std::move(e.wire.payload);
  e.job.started = 0;
  e.job.name.clear();
  if (mode_ == Mode::kStopping) {
    fail(e.job, proto::code::kShutdown, kShuttingDown);
    return;
  }
  open_[{e.job.client, e.job.id}] = queue_.put_back(std::move(e.job));
}

void WorkerPool::fail_sent(std::size_t slot, std::string_view code, const std::string& message) {
  Slot& s = slots_[slot];
  const Sent* r = running(s);
  for (Sent& e : s.sent) {
    if (e.settled) continue;
    e.settled = true;
    fail(e.job, code, message, std::nullopt, &e == r ? std::optional(s.pid) : std::nullopt);
  }
}

void WorkerPool::unwant(std::size_t slot, Sent& e) {
  Slot& s = slots_[slot];
  const bool runs = &e == running(s);
  const bool asked = e.recalled;
  e.settled = true;
  // The table sends only an idle or busy worker's jobs here (kLetGo settles the others').
  if (runs) {
    stop(slot, /*graceful=*/false);
    return;
  }
  if (!asked) env_.send_cancel(slot, e.job.id);
  start_running(slot);
}

WorkerPool::Sent* WorkerPool::find_sent(Slot& s, ClientId client, uint64_t id) {
  for (Sent& e : s.sent) {
    if (e.job.client == client && e.job.id == id) return &e;
  }
  return nullptr;
}

void WorkerPool::note_room() {
  if (overloaded_since_room_ == 0 || queue_.size() >= config_.queue.max_jobs) return;
  spdlog::info("the queue has room again after {} jobs were answered overloaded",
               overloaded_since_room_);
  overloaded_since_room_ = 0;
}

void WorkerPool::stop(std::size_t slot, bool graceful) {
  Slot& s = slots_[slot];
  if (graceful) {
    env_.send_shutdown(slot);
  } else {
    env_.signal_worker(slot, SIGTERM);
  }
  set_state(slot, State::kStopping);
  s.deadline = env_.now() + config_.grace_ms * 1000;
}

void WorkerPool::after_job(std::size_t slot) {
  Slot& s = slots_[slot];
  start_running(slot);
  if (s.retiring) {
  } else if (config_.max_jobs_per_worker != 0 && s.jobs >= config_.max_jobs_per_worker) {
    spdlog::info("worker {} ran {} jobs: replacing it", s.pid, s.jobs);
    s.retiring = true;
  } else if (config_.max_worker_rss_kb != 0) {
    const uint64_t rss = worker_rss_kb(s);
    if (rss > config_.max_worker_rss_kb) {
      spdlog::info("worker {} holds {} KiB (over {} KiB): replacing it", s.pid, rss,
                   config_.max_worker_rss_kb);
      s.retiring = true;
    }
  }
  // A worker being replaced runs what it was sent ahead first: nothing it holds is stranded.
  if (s.retiring && s.state == State::kIdle) stop(slot, /*graceful=*/true);
  if (s.state == State::kIdle && queue_.empty() && (quiesced_ || mode_ == Mode::kDraining)) {
    stop(slot, /*graceful=*/true);
  }
  advance();
}

void WorkerPool::answer_job(Job& job, bool ok, std::optional<proto::RawObject> value,
                            std::optional<proto::JobError> error, std::optional<pid_t> worker_pid) {
  open_.erase({job.client, job.id});
  const Micros now = env_.now();
  const Micros queued_until = job.started != 0 ? job.started : now;
  const uint64_t queue_us = queued_until - job.submitted;
  const uint64_t run_us = job.started != 0 ? now - job.started : 0;
  if (job.started != 0) {
    queue_us_.record(queue_us);
    run_us_.record(run_us);
  }
  ++(ok ? jobs_succeeded_ : jobs_failed_);
  proto::Result result;
  result.id = job.id;
  result.ok = ok;
  result.value = std::move(value);
  result.error = std::move(error);
  if (worker_pid) result.worker_pid = static_cast<uint64_t>(*worker_pid);
  result.queue_us = queue_us;
  result.run_us = run_us;
  if (env_.tracing()) trace_end(job, result);
  env_.answer(job.client, std::move(result));
}

void WorkerPool::trace_end(const Job& job, const proto::Result& result) {
  std::optional<std::size_t> slot;
  PoolLoad load;
  load.queued = queue_.size();
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    if (job.started != 0 && result.worker_pid && s.pid == static_cast<pid_t>(*result.worker_pid)) {
      slot = i;
    }
    load.running += running(s) != nullptr ? 1 : 0;
    load.alive += s.state == State::kIdle || s.state == State::kBusy ? 1 : 0;
  }
  env_.trace_job(job, result, slot, load);
}

void WorkerPool::fail(Job& job, std::string_view code, std::string message,
                      std::optional<std::string> detail, std::optional<pid_t> worker_pid) {
  answer_job(job, false, std::nullopt,
             proto::JobError{std::string(code), std::move(message), std::move(detail), std::nullopt,
                             std::nullopt},
             worker_pid);
}

void WorkerPool::fail_queued(std::string_view code, const std::string& message,
                             const std::optional<std::string>& detail) {
  for (Job& job : queue_.take_all()) fail(job, code, message, detail);
}

uint64_t WorkerPool::worker_rss_kb(const Slot& s) const {
  uint64_t kb = env_.rss_kb(s.pid);
  for (const pid_t tool : s.tools) kb += env_.rss_kb(tool);
  return kb;
}

void WorkerPool::advance() {
  dispatch();
  idle_check();
  maybe_finish_drain();
}

void WorkerPool::idle_check() {
  const bool busy = std::any_of(slots_.begin(), slots_.end(),
                                [](const Slot& s) { return s.state == State::kBusy; });
  if (busy || !queue_.empty() || quiesced_ || mode_ != Mode::kRunning) {
    if (busy || !queue_.empty()) idle_since_ = 0;
    return;
  }
  if (idle_since_ == 0) idle_since_ = env_.now();
}

void WorkerPool::maybe_finish_drain() {
  if (mode_ != Mode::kDraining || !queue_.empty()) return;
  const bool busy = std::any_of(slots_.begin(), slots_.end(),
                                [](const Slot& s) { return s.state == State::kBusy; });
  if (!busy) shutdown(/*drain=*/false);
}

proto::Stats WorkerPool::stats() const {
  proto::Stats st;
  st.uptime_ms = (env_.now() - started_at_) / 1000;
  st.workers_configured = slots_.size();
  std::size_t sent_ahead = 0;
  for (const Slot& s : slots_) {
    const bool alive = s.state != State::kEmpty && s.state != State::kBackoff;
    st.workers_alive += alive ? 1 : 0;
    const Sent* r = running(s);
    st.workers_busy += s.state == State::kBusy || r != nullptr ? 1 : 0;  // or crashing in a job
    sent_ahead += std::count_if(s.sent.begin(), s.sent.end(),
                                [r](const Sent& e) { return e.live() && &e != r; });
    if (alive) {
      st.worker_list.push_back(proto::WorkerInfo{static_cast<uint64_t>(s.pid),
                                                 kStateNames[index(s.state)].shown, s.jobs,
                                                 worker_rss_kb(s), std::nullopt, std::nullopt});
      if (r != nullptr) {
        st.worker_list.back().job = proto::RunningJob{
            r->job.id, r->job.kind, r->job.name, (env_.now() - r->job.started) / 1000,
            s.job_phase.empty() ? std::nullopt : std::optional<std::string>(s.job_phase)};
      }
    }
  }
  st.jobs_submitted = jobs_submitted_;
  st.jobs_succeeded = jobs_succeeded_;
  st.jobs_failed = jobs_failed_;
  st.jobs_queued = queue_.size() + sent_ahead;  // a job sent ahead has not started either
  st.jobs_running = st.workers_busy;
  st.worker_starts = worker_starts_;
  st.worker_crashes = worker_crashes_;
  st.max_queue_depth = max_queue_depth_;
  st.queue_us_p50 = queue_us_.percentile(50);
  st.queue_us_p95 = queue_us_.percentile(95);
  st.queue_us_max = queue_us_.max();
  st.run_us_p50 = run_us_.percentile(50);
  st.run_us_p95 = run_us_.percentile(95);
  st.run_us_max = run_us_.max();
  add_host_stats(st);
  return st;
}

}  // namespace kiln::supervisor
