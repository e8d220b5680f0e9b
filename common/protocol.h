// The messages of docs/protocol.md, both links, with encode and decode. Encoding appends one whole
// frame to a buffer (so that several frames go out in one write). Decoding takes one frame body,
// validates everything docs/protocol.md calls a protocol error, and returns the message or an error
// that names the field ("submit.id: expected uint, got str"); it never throws.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "common/result.h"

namespace kiln::proto {

inline constexpr uint64_t kProtocolVersion = 1;

// What an `exec` job returns of each output stream when its payload sets no max_output_bytes.
inline constexpr uint64_t kExecDefaultMaxOutput = 16u << 20;

// One msgpack object kept as its encoded bytes. `payload` and `value` travel from client to
// worker and back as these bytes, never decoded into C++ types and re-encoded.
struct RawObject {
  std::string bytes;  // exactly one complete msgpack object

  static RawObject nil() { return RawObject{std::string(1, '\xc0')}; }
  bool operator==(const RawObject&) const = default;
};

// A msgpack `bin` value: bytes for the other end, passed through untouched.
struct Bytes {
  std::string bytes;
  bool operator==(const Bytes&) const = default;
};

struct JobError {
  std::string code;
  std::string message;
  std::optional<std::string> detail;
  std::optional<Bytes> data;  // `error.data`: only tools set it (a pickled exception)
  // `error.errno`: the OS error of a spawn_failed exec command that could not be executed.
  std::optional<uint64_t> os_errno;
  bool operator==(const JobError&) const = default;
};

// Error codes of `result` (docs/protocol.md).
namespace code {
inline constexpr std::string_view kJobFailed = "job_failed";
inline constexpr std::string_view kSpawnFailed = "spawn_failed";
inline constexpr std::string_view kBadPayload = "bad_payload";
inline constexpr std::string_view kUnknownKind = "unknown_kind";
inline constexpr std::string_view kWorkerCrashed = "worker_crashed";
inline constexpr std::string_view kWorkerProtocolError = "worker_protocol_error";
inline constexpr std::string_view kTimeout = "timeout";
inline constexpr std::string_view kCancelled = "cancelled";
inline constexpr std::string_view kShutdown = "shutdown";
inline constexpr std::string_view kOverloaded = "overloaded";
inline constexpr std::string_view kPoolUnavailable = "pool_unavailable";
// Only on the worker link: the worker did not run the job (it was cancelled before it started, or
// the worker ends first); the supervisor puts it back in the queue or drops it. Never a client's.
inline constexpr std::string_view kNotStarted = "not_started";
// Only on the worker link, from a job run on a distcc host: the host failed it (kHostFailed: the
// supervisor backs the host off) or distcc cannot compile it there (kLocalOnly); either way the
// supervisor runs it again elsewhere. Never a client's.
inline constexpr std::string_view kHostFailed = "host_failed";
inline constexpr std::string_view kLocalOnly = "local_only";
// Codes of the connection-level `error` message.
inline constexpr std::string_view kProtocolError = "protocol_error";
inline constexpr std::string_view kDuplicateId = "duplicate_id";
inline constexpr std::string_view kPermissionDenied = "permission_denied";
inline constexpr std::string_view kTooManyConnections = "too_many_connections";
}  // namespace code

// The job kinds the worker serves itself; a tool may not take one of these names. selftest is
// served only with --enable-selftest.
inline constexpr std::string_view kSelftestKind = "selftest";
inline constexpr std::string_view kBuiltinKinds[] = {"echo", "exec", kSelftestKind};

// ---- Client link, client -> supervisor ----
struct Submit {
  uint64_t id = 0;
  std::string kind;
  RawObject payload;
  std::optional<uint64_t> timeout_ms;
  std::optional<int64_t> priority;
  // Asks for a `started` message when a worker takes the job as the one it runs.
  std::optional<bool> notify_started = std::nullopt;
  bool operator==(const Submit&) const = default;
};
struct Cancel {
  uint64_t id = 0;
  bool operator==(const Cancel&) const = default;
};
struct Quiesce {
  bool operator==(const Quiesce&) const = default;
};
struct Wakeup {
  bool operator==(const Wakeup&) const = default;
};
struct StatsRequest {
  bool operator==(const StatsRequest&) const = default;
};
struct Shutdown {
  std::optional<bool> drain;  // absent: false
  bool operator==(const Shutdown&) const = default;
};
struct TraceRequest {
  std::optional<std::string> file;  // start writing the timeline there; absent: stop
  bool operator==(const TraceRequest&) const = default;
};

// ---- Client link, supervisor -> client ----
struct Hello {
  uint64_t protocol = kProtocolVersion;
  std::string server;
  uint64_t pid = 0;
  uint64_t workers = 0;
  std::vector<std::string> kinds;
  std::string key_id;
  bool operator==(const Hello&) const = default;
};
struct Result {
  uint64_t id = 0;
  bool ok = false;
  std::optional<RawObject> value;
  std::optional<JobError> error;
  std::optional<uint64_t> worker_pid;
  uint64_t queue_us = 0;
  uint64_t run_us = 0;
  bool operator==(const Result&) const = default;
};
struct Status {
  uint64_t id = 0;
  uint64_t elapsed_ms = 0;
  uint64_t worker_pid = 0;
  std::optional<std::string> phase;
  bool operator==(const Status&) const = default;
};
// A job asked for with notify_started has begun on a worker (the one it runs, not one sent ahead).
struct Started {
  uint64_t id = 0;
  uint64_t worker_pid = 0;
  bool operator==(const Started&) const = default;
};
// The job a worker is running, in stats.worker_list (while it runs one).
struct RunningJob {
  uint64_t id = 0;
  std::string kind;
  std::string name;  // its source file, else its command, else its kind
  uint64_t elapsed_ms = 0;
  std::optional<std::string> phase;
  bool operator==(const RunningJob&) const = default;
};
struct WorkerInfo {
  uint64_t pid = 0;
  std::string state;
  uint64_t jobs = 0;
  uint64_t rss_kb = 0;
  std::optional<RunningJob> job;
  std::optional<std::string> host;  // a distcc host's slot: the host its jobs run on
  bool operator==(const WorkerInfo&) const = default;
};
// A distcc host of the pool, in stats.hosts (docs/protocol.md).
struct HostInfo {
  std::string host;
  uint64_t slots = 0;    // its limit: the pool's slots for it
  uint64_t running = 0;  // jobs it runs now
  uint64_t jobs = 0;     // jobs it has run (compiled, or the compiler's error)
  uint64_t failures = 0;
  std::string state;                    // "up" or "backoff"
  std::optional<std::string> reason;    // its last failure
  std::optional<uint64_t> since_ms;     // backoff: for this long
  std::optional<uint64_t> retry_in_ms;  // backoff: tried again in this long
  bool operator==(const HostInfo&) const = default;
};
struct Stats {
  uint64_t uptime_ms = 0;
  uint64_t workers_configured = 0;
  uint64_t workers_alive = 0;
  uint64_t workers_busy = 0;
  uint64_t jobs_submitted = 0;
  uint64_t jobs_succeeded = 0;
  uint64_t jobs_failed = 0;
  uint64_t jobs_queued = 0;
  uint64_t jobs_running = 0;
  uint64_t worker_starts = 0;
  uint64_t worker_crashes = 0;
  uint64_t max_queue_depth = 0;
  uint64_t queue_us_p50 = 0;
  uint64_t queue_us_p95 = 0;
  uint64_t queue_us_max = 0;
  uint64_t run_us_p50 = 0;
  uint64_t run_us_p95 = 0;
  uint64_t run_us_max = 0;
  std::vector<WorkerInfo> worker_list;
  std::optional<std::vector<HostInfo>> hosts;  // a pool with distcc hosts
  bool operator==(const Stats&) const = default;
};
struct Error {
  std::string code;
  std::string message;
  bool operator==(const Error&) const = default;
};
struct Bye {
  bool operator==(const Bye&) const = default;
};
struct Traced {
  std::optional<std::string> file;   // the timeline being written now; absent: none
  std::optional<std::string> error;  // why the request failed (the previous state holds)
  bool operator==(const Traced&) const = default;
};

// ---- Worker link, supervisor -> worker ----
struct Job {
  uint64_t id = 0;
  std::string kind;
  RawObject payload;
  uint64_t timeout_ms = 0;  // 0: none
  bool operator==(const Job&) const = default;
};
struct WorkerShutdown {
  bool operator==(const WorkerShutdown&) const = default;
};

// ---- Worker link, worker -> supervisor ----
struct Ready {
  uint64_t protocol = kProtocolVersion;
  uint64_t pid = 0;
  std::vector<std::string> kinds;
  std::string key_id;
  // The pids of the worker's tools (each leads its own process group), for the supervisor to
  // count their memory with the worker's and to end their groups when the worker is gone.
  std::optional<std::vector<uint64_t>> tools;
  bool operator==(const Ready&) const = default;
};
struct WorkerResult {
  uint64_t id = 0;
  bool ok = false;
  std::optional<RawObject> value;
  std::optional<JobError> error;
  uint64_t run_us = 0;
  // The worker ends after this result (its tool died, broke the tool link or timed out): the
  // supervisor sends it nothing more and replaces it once it is gone.
  std::optional<bool> retire;
  bool operator==(const WorkerResult&) const = default;
};
struct Phase {
  uint64_t id = 0;
  std::string phase;
  std::optional<uint64_t> pgid;
  bool operator==(const Phase&) const = default;
};

// ---- Tool link (worker <-> a warm tool); its `shutdown` is WorkerShutdown, its `phase` Phase
// (a tool's pgid is not used) ----

// What a tool may say in text (docs/protocol.md "Tool link"): the worker relays a longer `phase`,
// `error.message` or `error.detail` cut to this many bytes and marked (kiln::shortened). The
// supervisor holds a worker's phases to the same length: they are in every `status` and `stats`.
inline constexpr std::size_t kMaxPhaseBytes = 1024;
inline constexpr std::size_t kMaxMessageBytes = 4096;
inline constexpr std::size_t kMaxDetailBytes = 64 << 10;

struct ToolJob {
  uint64_t id = 0;
  RawObject payload;
  uint64_t timeout_ms = 0;  // 0: none
  bool operator==(const ToolJob&) const = default;
};
struct ToolReady {
  uint64_t protocol = kProtocolVersion;
  uint64_t pid = 0;
  bool operator==(const ToolReady&) const = default;
};
struct ToolResult {
  uint64_t id = 0;
  bool ok = false;
  std::optional<RawObject> value;
  std::optional<JobError> error;
  bool operator==(const ToolResult&) const = default;
};

// ---- Zygote link (worker <-> a tool's zygote, docs/protocol.md "Zygote link") ----
struct ZygoteFork {
  uint64_t worker = 0;  // the worker's pid (its pidfd travels with the message)
  bool operator==(const ZygoteFork&) const = default;
};
struct ZygoteForked {
  uint64_t pid = 0;  // the tool's (a pidfd of it travels with the message)
  bool operator==(const ZygoteForked&) const = default;
};
struct ZygoteRefused {
  std::string message;
  bool operator==(const ZygoteRefused&) const = default;
};
struct ZygoteExited {
  uint64_t pid = 0;
  uint64_t status = 0;  // its exit status (0 when a signal ended it)
  uint64_t signal = 0;  // the signal that ended it (0: none)
  bool operator==(const ZygoteExited&) const = default;
};

// ---- Job kinds' payloads and values (docs/protocol.md "Job kinds"): what a job's RawObject holds
// for a built-in kind, encoded and decoded with the same field lists as the messages ----

// The most msgpack values (every element and key, at any depth) a payload may hold: 24 MB once
// unpacked. An exec job with 100,000 arguments and as many variables holds about 300,000.
inline constexpr uint64_t kMaxPayloadObjects = 1'000'000;

// A msgpack map of str to str, in wire order (`env`).
using StrMap = std::vector<std::pair<std::string, std::string>>;
// A msgpack map of str to [uint, uint] (`rlimits`: name -> [soft, hard]).
using LimitMap = std::vector<std::pair<std::string, std::pair<uint64_t, uint64_t>>>;

// The payload of an `exec` job. Only the types are checked in decoding: what the values may be
// (argv not empty, no NUL bytes, umask at most 0777, ...) is the worker's to check.
struct ExecRequest {
  std::vector<std::string> argv;
  std::optional<std::string> cwd;
  std::optional<StrMap> env;
  std::optional<bool> clear_env;
  std::optional<Bytes> stdin_data;  // `stdin`
  std::optional<uint64_t> max_output_bytes;
  std::optional<uint64_t> umask;
  std::optional<int64_t> nice;
  std::optional<LimitMap> rlimits;
  bool operator==(const ExecRequest&) const = default;
};
// The value of an `exec` job.
struct ExecValue {
  int64_t exit_code = 0;  // -1 when a signal ended the command
  uint64_t signal = 0;    // 0: none
  Bytes stdout_data;      // `stdout`
  Bytes stderr_data;      // `stderr`
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  uint64_t wall_us = 0;
  uint64_t user_us = 0;
  uint64_t sys_us = 0;
  uint64_t max_rss_kb = 0;
  bool operator==(const ExecValue&) const = default;
};

RawObject encode_exec_request(const ExecRequest& m);
RawObject encode_exec_value(const ExecValue& m);
// Errors name the field: "exec.argv: missing", "exec.payload: expected map, got str",
// "exec.value.stdout: expected bin, got str".
Expected<ExecRequest> decode_exec_request(const RawObject& raw);
Expected<ExecValue> decode_exec_value(const RawObject& raw);

// What each side of each link receives.
using ClientRequest =
    std::variant<Submit, Cancel, Quiesce, Wakeup, StatsRequest, Shutdown, TraceRequest>;
using ClientEvent = std::variant<Hello, Result, Status, Stats, Error, Bye, Traced, Started>;
// A worker is sent `cancel` (the client link's message) for a job it was sent ahead but may not
// have started; see docs/protocol.md, "Worker link".
using WorkerCommand = std::variant<Job, WorkerShutdown, Cancel>;
using WorkerEvent = std::variant<Ready, WorkerResult, Phase>;
using ToolCommand = std::variant<ToolJob, WorkerShutdown>;
using ToolEvent = std::variant<ToolReady, ToolResult, Phase>;
using ZygoteRequest = std::variant<ZygoteFork>;
using ZygoteEvent = std::variant<ZygoteForked, ZygoteRefused, ZygoteExited>;

Expected<ClientRequest> decode_client_request(std::string_view body);
Expected<ClientEvent> decode_client_event(std::string_view body);
Expected<WorkerCommand> decode_worker_command(std::string_view body);
Expected<WorkerEvent> decode_worker_event(std::string_view body);
Expected<ToolCommand> decode_tool_command(std::string_view body);
Expected<ToolEvent> decode_tool_event(std::string_view body);
Expected<ZygoteRequest> decode_zygote_request(std::string_view body);
Expected<ZygoteEvent> decode_zygote_event(std::string_view body);

// Each appends one whole frame (header and body) to `out`.
void encode(const Submit& m, std::string& out);
void encode(const Cancel& m, std::string& out);
void encode(const Quiesce& m, std::string& out);
void encode(const Wakeup& m, std::string& out);
void encode(const StatsRequest& m, std::string& out);
void encode(const Shutdown& m, std::string& out);
void encode(const TraceRequest& m, std::string& out);
void encode(const Traced& m, std::string& out);
void encode(const Hello& m, std::string& out);
void encode(const Result& m, std::string& out);
void encode(const Status& m, std::string& out);
void encode(const Started& m, std::string& out);
void encode(const Stats& m, std::string& out);
void encode(const Error& m, std::string& out);
void encode(const Bye& m, std::string& out);
void encode(const Job& m, std::string& out);
void encode(const WorkerShutdown& m, std::string& out);
void encode(const Ready& m, std::string& out);
void encode(const WorkerResult& m, std::string& out);
void encode(const Phase& m, std::string& out);
void encode(const ToolJob& m, std::string& out);
void encode(const ToolReady& m, std::string& out);
void encode(const ToolResult& m, std::string& out);
void encode(const ZygoteFork& m, std::string& out);
void encode(const ZygoteForked& m, std::string& out);
void encode(const ZygoteRefused& m, std::string& out);
void encode(const ZygoteExited& m, std::string& out);

template <class... Ts>
void encode(const std::variant<Ts...>& m, std::string& out) {
  std::visit([&out](const auto& msg) { encode(msg, out); }, m);
}

// The `type` string of a message.
std::string_view type_name(const ClientRequest& m);
std::string_view type_name(const ClientEvent& m);
std::string_view type_name(const WorkerCommand& m);
std::string_view type_name(const WorkerEvent& m);
std::string_view type_name(const ToolCommand& m);
std::string_view type_name(const ToolEvent& m);

}  // namespace kiln::proto
