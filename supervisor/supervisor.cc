#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <malloc.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <csignal>
#include <thread>

#include "common/build_key.h"
#include "common/exit_codes.h"
#include "common/fd.h"
#include "common/frame.h"
#include "common/text.h"
#include "common/tool_spec.h"
#include "common/version.h"

extern char** environ;

namespace kiln::supervisor {
namespace {

const char* handle_kind(uv_handle_type t) {
  switch (t) {
    case UV_TTY:
      return "a terminal";
    case UV_FILE:
      return "a regular file";
    case UV_UNKNOWN_HANDLE:
      return "not open, or of an unusable kind";
    default:
      return "of an unusable kind";
  }
}

// The abstract socket name of the zygote of `tool`: unique to this supervisor, not guessable.
std::string zygote_address(const std::string& tool) {
  return "@kiln-zygote-" + std::to_string(::getpid()) + "-" + key_id(random_key(16)) + "-" + tool;
}

// A `stats` reply within the client's frame limit. Each of its entries is bounded (a phase, a
// job's name), but a pool of many workers under a small --max-frame could still outgrow it: the
// entries of worker_list that do not fit are left out, the last first.
proto::Stats within_frame(proto::Stats stats, uint32_t max_frame) {
  std::string frame;
  proto::encode(stats, frame);
  if (frame.size() - kFrameHeaderSize <= max_frame) return stats;
  std::vector<proto::WorkerInfo> entries = std::move(stats.worker_list);
  stats.worker_list.clear();
  frame.clear();
  proto::encode(stats, frame);
  // An array32 header at most, instead of the empty list's one byte.
  std::size_t size = frame.size() - kFrameHeaderSize + 4;
  const std::size_t empty_size = frame.size();
  std::size_t kept = 0;
  for (proto::WorkerInfo& entry : entries) {
    // One entry's bytes: a list of one still has a one-byte header.
    stats.worker_list.assign(1, entry);
    frame.clear();
    proto::encode(stats, frame);
    size += frame.size() - empty_size;
    if (size > max_frame) break;
    ++kept;
  }
  entries.resize(kept);
  stats.worker_list = std::move(entries);
  return stats;
}

// The command line of every worker, its path first.
ExecStrings worker_command(const Options& o, const std::vector<std::unique_ptr<Zygote>>& zygotes) {
  std::vector<std::string> args = {o.worker_path,
                                   "--parent",
                                   std::to_string(::getpid()),
                                   "--read-fd",
                                   "3",
                                   "--write-fd",
                                   "4",
                                   "--max-frame",
                                   std::to_string(o.max_frame),
                                   "--grace-ms",
                                   std::to_string(o.grace_ms)};
  if (o.enable_selftest) args.push_back("--enable-selftest");
  // main.cc checked every spec; each worker reads them again, as they came.
  for (const std::string& spec : o.tools) {
    args.push_back("--tool");
    args.push_back(spec);
  }
  for (std::size_t i = 0; i < zygotes.size(); ++i) {
    args.push_back("--zygote");
    args.push_back(o.zygotes[i] + "=" + zygotes[i]->address());
  }
  if (!o.log_level.empty()) {
    args.push_back("--log-level");
    args.push_back(o.log_level);
  }
  return ExecStrings(std::move(args));
}

// Our environment with the build key in it. The key travels there, which only the user can read
// in /proc.
// A distcc host's slots also get the host and the client to run (worker/exec_job.cc).
ExecStrings worker_environment(const std::string& key, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string_view v(*e);
    if (v.rfind("KILN_KEY=", 0) != 0 && v.rfind("KILN_DISTCC", 0) != 0) env.emplace_back(*e);
  }
  env.push_back("KILN_KEY=" + base64_encode(key));
  env.insert(env.end(), extra.begin(), extra.end());
  return ExecStrings(std::move(env));
}

// The pool's configuration from the options (its kinds, key and hosts are the caller's to add).
PoolConfig pool_config(const Options& o) {
  PoolConfig config;
  config.workers = o.workers;
  config.job_timeout_ms = o.job_timeout_ms;
  config.grace_ms = o.grace_ms;
  config.start_timeout_ms = o.start_timeout_ms;
  config.idle_quiesce_ms = o.idle_quiesce_ms;
  config.max_jobs_per_worker = o.max_jobs_per_worker;
  config.max_worker_rss_kb = o.max_worker_rss_mb * 1024;
  config.pipeline_depth = o.pipeline_depth;
  // One connection (pipe mode) may use the whole queue; of a daemon's, none more than a quarter,
  // so that one build cannot get every other build's jobs answered overloaded.
  const uint64_t share = o.listen.empty() ? 1 : 4;
  config.queue.max_jobs = o.max_queue;
  config.queue.max_bytes = o.max_queue_mb << 20;
  config.queue.max_client_jobs =
      o.max_client_queue != 0 ? o.max_client_queue : std::max<std::size_t>(1, o.max_queue / share);
  config.queue.max_client_bytes =
      (o.max_client_queue_mb != 0 ? o.max_client_queue_mb
                                  : std::max<uint64_t>(1, o.max_queue_mb / share))
      << 20;
  config.status_interval_ms = o.status_interval_ms;
  return config;
}

}  // namespace

Supervisor::Supervisor(Options options, std::string key)
    : options_(std::move(options)), key_(std::move(key)), key_id_(key_id(key_)) {
  if (options_.workers == 0) options_.workers = std::max(1u, std::thread::hardware_concurrency());
  if (options_.worker_path.empty()) {
    // Beside us in a build tree; in libexec/kiln/ when installed (it is not a command to run).
    options_.worker_path =
        first_executable({beside_self("kiln-worker"), beside_self("../libexec/kiln/kiln-worker")})
            .value_or(beside_self("kiln-worker"));
  }
  // The worker's own kinds; selftest only when enabled (its jobs crash and hang on purpose).
  for (const std::string_view kind : proto::kBuiltinKinds) {
    if (kind != proto::kSelftestKind || options_.enable_selftest) kinds_.emplace_back(kind);
  }

  for (const std::string& spec : options_.tools) kinds_.push_back(spec.substr(0, spec.find('=')));
  worker_envp_ = worker_environment(key_);
  devnull_.reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
  for (const std::string& name : options_.zygotes) {
    for (const std::string& spec : options_.tools) {
      Expected<ToolSpec> tool = parse_tool_spec(spec);
      if (!tool || tool->name != name) continue;
      std::vector<std::string> env = worker_envp_.strings();
      zygotes_.push_back(std::make_unique<Zygote>(&loop_, name, tool->argv, std::move(env),
                                                  zygote_address(name), devnull_.get()));
    }
  }
  worker_argv_ = worker_command(options_, zygotes_);

  PoolConfig config = pool_config(options_);
  config.kinds = kinds_;
  config.key_id = key_id_;
  if (!options_.distcc_hosts.empty()) {
    Expected<std::vector<HostSpec>> hosts = parse_hosts(options_.distcc_hosts);  // main checked it
    if (hosts) config.hosts = std::move(*hosts);
    for (const HostSpec& host : config.hosts) {
      host_envp_.push_back(worker_environment(
          key_, {"KILN_DISTCC_HOST=" + host.spec, "KILN_DISTCC=" + options_.distcc_client}));
    }
  }
  pool_ = std::make_unique<WorkerPool>(std::move(config), *this);
  workers_.resize(pool_->slot_count());
  for (std::size_t slot = 0; slot < pool_->slot_count(); ++slot) {
    const std::optional<std::size_t> host = pool_->hosts().host_of(slot);
    lanes_.push_back(host ? "host " + pool_->hosts().spec(*host).name + " slot " +
                                std::to_string(slot - options_.workers)
                          : "worker slot " + std::to_string(slot));
  }
  // A generation per slot: the local workers and every distcc host's slots.
  rules_ = Rules({!options_.listen.empty(), options_.idle_exit_ms, pool_->slot_count()});
}

Supervisor::~Supervisor() = default;

proto::Hello Supervisor::hello() const {
  return proto::Hello{proto::kProtocolVersion,
                      "kiln-supervisor " + std::string(kVersion),
                      static_cast<uint64_t>(::getpid()),
                      pool_->slot_count(),
                      kinds_,
                      key_id_};
}

int Supervisor::run() {
  if (uv_loop_init(&loop_) != 0) fatal_errno("uv_loop_init");
  uv_timer_init(&loop_, &tick_);
  // Whatever a dead worker leaves running is handed to us, not to init, so that we can end it:
  // a command whose group we never learned (the worker died between starting it and saying so)
  // and anything that left its group. Each SIGCHLD looks for such orphans.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  const int signums[4] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
  for (int i = 0; i < 4; ++i) {
    uv_signal_init(&loop_, &signals_[i]);
    signals_[i].data = this;
    uv_signal_start(
        &signals_[i],
        [](uv_signal_t* h, int signum) { static_cast<Supervisor*>(h->data)->on_signal(signum); },
        signums[i]);
  }
  tick_.data = this;

  Expected<void> link = options_.listen.empty() ? open_client_link() : listen_socket();
  if (link && !options_.trace_file.empty()) {
    if (std::optional<std::string> error = retrace(options_.trace_file).error) link = fail(*error);
  }
  int status = 0;
  if (!link) {
    spdlog::error("{}", link.error());
    std::fprintf(stderr, "kiln-supervisor: %s\n", link.error().c_str());
    status =
        link.error_code() == kAlreadyServingCode ? exit_code::kAlreadyServing : exit_code::kUsage;
    pool_->shutdown(false);
    close_handles();
  } else {
    spdlog::info("kiln-supervisor {} serving {} with {} workers (key {})", kVersion,
                 options_.listen.empty() ? "its client link" : options_.listen, options_.workers,
                 key_id_);
    pool_->start();
    // A pipe-mode supervisor lives for the tool that started it; a daemon only if asked.
    if (options_.listen.empty() || options_.parent) watch_parent();
    after_event();
  }
  uv_run(&loop_, UV_RUN_DEFAULT);
  trace_.reset();  // its closing bracket
  end_orphans();   // those of the workers that stopped last
  const int rc = uv_loop_close(&loop_);
  if (rc != 0) {
    spdlog::error("the event loop still had open handles at exit: {}", uv_strerror(rc));
    return exit_code::kInternal;
  }
  spdlog::info("kiln-supervisor stopped");
  return status;
}

Expected<void> Supervisor::open_client_link() {
  const int read_fd = options_.read_fd.value_or(0);
  const int write_fd = options_.write_fd.value_or(1);
  for (const auto& [fd, name] :
       {std::pair{read_fd, "--read-fd"}, std::pair{write_fd, "--write-fd"}}) {
    // A file or /dev/null would be accepted by uv_pipe_open and then abort the loop (libuv
    // #281): only pipes and sockets carry a link.
    const uv_handle_type type = uv_guess_handle(fd);
    if (type != UV_NAMED_PIPE) {
      return fail(std::string("the client link ") + name + " " + std::to_string(fd) + " is " +
                  handle_kind(type) +
                  "; kiln-supervisor speaks length-prefixed msgpack frames over a pipe or a "
                  "socket (docs/protocol.md)");
    }
  }
  ClientConnection& client = add_client();
  if (const int rc = client.open(read_fd, write_fd); rc != 0) {
    client.close();
    return fail("cannot use the client link: " + std::string(uv_strerror(rc)));
  }
  client.start(hello());
  return {};
}

ClientConnection& Supervisor::add_client() {
  const ClientId id = next_client_++;
  auto client = std::make_unique<ClientConnection>(
      &loop_, id, options_.max_frame,
      ClientConnection::Events{[this](ClientConnection& c, proto::ClientRequest r) {
                                 on_request(c, std::move(r));
                                 after_event();
                               },
                               [this](ClientConnection& c) {
                                 on_client_end(c);
                                 after_event();
                               },
                               // Destroys c (and this callback): nothing may follow but
                               // giving its buffers' pages back (a flood may have left them).
                               [this](ClientConnection& c) {
                                 clients_.erase(c.id());
                                 ::malloc_trim(0);
                               },
                               [this](ClientConnection& c, bool paused) {
                                 pool_->client_paused(c.id(), paused);
                                 after_event();
                               }});
  ClientConnection& ref = *client;
  clients_.emplace(id, std::move(client));
  return ref;
}

Expected<void> Supervisor::listen_socket() {
  listener_ = std::make_unique<SocketListener>(
      &loop_, options_.listen, options_.max_connections, options_.grace_ms,
      SocketListener::Events{[this]() -> ClientConnection& { return add_client(); },
                             [this] { return clients_.size(); },
                             [this](ClientConnection& c) { c.start(hello()); },
                             [this] { after_event(); }});
  return listener_->listen();
}

bool Supervisor::idle() const {
  return !pool_->shutting_down() && pool_->open_jobs() == 0 &&
         std::all_of(clients_.begin(), clients_.end(),
                     [](const auto& c) { return c.second->ended(); });
}

void Supervisor::watch_parent() {
  const pid_t parent = options_.parent.value_or(::getppid());
  // A pidfd makes the parent's exit an event on the loop (Linux >= 5.3).
  parent_pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, parent, 0));
  if (parent_pidfd_ < 0) {
    begin_shutdown(false, "the parent process " + std::to_string(parent) + " is gone");
    return;
  }
  uv_poll_init(&loop_, &parent_poll_, parent_pidfd_);
  parent_poll_.data = this;
  parent_watched_ = true;
  uv_poll_start(&parent_poll_, UV_READABLE, [](uv_poll_t* h, int, int) {
    auto* self = static_cast<Supervisor*>(h->data);
    uv_poll_stop(h);
    self->begin_shutdown(false, "the parent process is gone");
    self->after_event();
  });
}

void Supervisor::on_request(ClientConnection& client, proto::ClientRequest request) {
  std::visit(
      [&](auto& r) {
        using T = std::decay_t<decltype(r)>;
        if constexpr (std::is_same_v<T, proto::Submit>) {
          const uint64_t id = r.id;
          if (pool_->submit(client.id(), std::move(r)) == WorkerPool::Submitted::kDuplicateId) {
            client.protocol_error(proto::code::kDuplicateId,
                                  "id " + std::to_string(id) + " is still running");
          }
        } else if constexpr (std::is_same_v<T, proto::Cancel>) {
          pool_->cancel(client.id(), r.id);
        } else if constexpr (std::is_same_v<T, proto::Quiesce>) {
          pool_->quiesce();
        } else if constexpr (std::is_same_v<T, proto::Wakeup>) {
          pool_->wakeup();
        } else if constexpr (std::is_same_v<T, proto::StatsRequest>) {
          client.send(within_frame(pool_->stats(), options_.max_frame));
        } else if constexpr (std::is_same_v<T, proto::Shutdown>) {
          begin_shutdown(r.drain.value_or(false), "asked by the client");
        } else if constexpr (std::is_same_v<T, proto::TraceRequest>) {
          client.send(retrace(r.file));
        }
      },
      request);
}

void Supervisor::on_client_end(ClientConnection& client) {
  const Rules::Decision d = rules_.on_client_end();
  if (d.act == Rules::Act::kShutDown) {
    begin_shutdown(false, d.why);
    return;
  }
  pool_->client_gone(client.id());
  client.finish(options_.grace_ms, /*bye=*/false);
}

void Supervisor::on_signal(int signum) {
  const Rules::Decision d = rules_.on_signal(signum);
  switch (d.act) {
    case Rules::Act::kEndOrphans:
      end_orphans();
      return;
    case Rules::Act::kKillAll:
      spdlog::warn("{}", d.why);
      pool_->kill_all();
      break;
    case Rules::Act::kShutDown:
    case Rules::Act::kDropClient:
      begin_shutdown(false, d.why);
      break;
  }
  after_event();
}

void Supervisor::end_orphans() {
  std::vector<pid_t> workers;
  for (const auto& w : workers_) {
    if (w) workers.push_back(w->pid());
  }
  for (const auto& [raw, owned] : released_) workers.push_back(raw->pid());
  // The zygotes, and the tools they forked: a zygote that died handed them to us, and they
  // belong to their workers.
  for (const auto& zygote : zygotes_) workers.push_back(zygote->pid());
  for (const pid_t tool : pool_->tool_pids()) workers.push_back(tool);
  if (const std::size_t n = kill_children_except(workers)) {
    spdlog::warn("killed {} process{} left behind by a worker that died", n, n == 1 ? "" : "es");
  }
}

void Supervisor::begin_shutdown(bool drain, const std::string& why) {
  // The pool owns the shutdown's phase; this only says why it begins.
  if (pool_->shutting_down() && drain) return;
  if (!pool_->shutting_down()) {
    spdlog::info("shutting down{}: {}", drain ? " after the queue" : "", why);
  }
  pool_->shutdown(drain);
}

void Supervisor::run_zygotes_as_wanted() {
  if (pool_->shutting_down() || pool_->quiesced()) {
    for (auto& zygote : zygotes_) zygote->unwant();
  }
}

void Supervisor::after_event() {
  if (finished_) return;
  run_zygotes_as_wanted();
  if (pool_->stopped()) {
    close_handles();
    return;
  }
  const Micros now_us = now();
  std::optional<Micros> next = pool_->next_deadline();
  if (const std::optional<Micros> exit_at = rules_.idle(idle(), now_us)) {
    if (!next || *exit_at < *next) next = exit_at;
  }
  if (next) {
    const uint64_t delay_ms = *next > now_us ? (*next - now_us + 999) / 1000 : 0;
    uv_timer_start(
        &tick_,
        [](uv_timer_t* t) {
          auto* self = static_cast<Supervisor*>(t->data);
          self->pool_->on_tick();
          if (std::optional<std::string> why = self->rules_.idle_exit_due(self->now())) {
            self->begin_shutdown(false, *why);
          }
          self->after_event();
        },
        delay_ms, 0);
  } else {
    uv_timer_stop(&tick_);
  }
}

void Supervisor::close_handles() {
  finished_ = true;
  for (auto& zygote : zygotes_) zygote->close();
  for (auto& [id, client] : clients_) client->finish(options_.grace_ms);
  if (listener_) listener_->close();
  uv_close(reinterpret_cast<uv_handle_t*>(&tick_), nullptr);
  for (auto& s : signals_) uv_close(reinterpret_cast<uv_handle_t*>(&s), nullptr);
  if (parent_watched_) {
    uv_close(reinterpret_cast<uv_handle_t*>(&parent_poll_),
             [](uv_handle_t* h) { ::close(static_cast<Supervisor*>(h->data)->parent_pidfd_); });
  } else if (parent_pidfd_ >= 0) {
    ::close(parent_pidfd_);
  }
}

// ---- PoolEnv ----

Micros Supervisor::now() { return uv_hrtime() / 1000; }

void Supervisor::release_process(std::size_t slot) {
  std::unique_ptr<WorkerProcess> proc = std::move(workers_[slot]);
  if (!proc) return;
  WorkerProcess* raw = proc.get();
  released_.emplace(raw, std::move(proc));
  raw->close();
}

Expected<pid_t> Supervisor::start_worker(std::size_t slot) {
  // Listening before the worker could ask it for its tool.
  for (auto& zygote : zygotes_) zygote->want();
  release_process(slot);
  const uint64_t generation = rules_.new_generation(slot);
  // Events of a process that is no longer its slot's current one are stale: ignore them.
  auto current = [this, slot, generation] { return rules_.current(slot, generation); };
  WorkerProcess::Events events{
      [this, slot, current](proto::WorkerEvent event) {
        if (!current()) return;
        if (auto* ready = std::get_if<proto::Ready>(&event)) {
          pool_->on_ready(slot, *ready);
        } else if (auto* result = std::get_if<proto::WorkerResult>(&event)) {
          pool_->on_result(slot, std::move(*result));
        } else {
          pool_->on_phase(slot, std::get<proto::Phase>(event));
        }
        after_event();
      },
      [this, slot, current](const std::string& why) {
        if (!current()) return;
        pool_->on_protocol_error(slot, why);
        after_event();
      },
      [this, slot, current] {
        if (!current()) return;
        pool_->on_crash_reported(slot);
        after_event();
      },
      [this, slot, current](const ExitInfo& exit) {
        if (!current()) return;
        release_process(slot);
        pool_->on_gone(slot, exit);
        after_event();
      },
      [this](WorkerProcess* self) { released_.erase(self); }};
  workers_[slot] = std::make_unique<WorkerProcess>(&loop_, options_.max_frame, options_.grace_ms,
                                                   std::move(events));
  const std::optional<std::size_t> host = pool_->hosts().host_of(slot);
  const int rc =
      workers_[slot]->spawn(worker_argv_, host ? host_envp_[*host] : worker_envp_, devnull_.get());
  if (rc != 0) {
    rules_.new_generation(slot);  // what the failed spawn still reports is stale
    release_process(slot);
    return fail("cannot start " + options_.worker_path + ": " + uv_strerror(rc));
  }
  spdlog::debug("worker {} started in slot {}", workers_[slot]->pid(), slot);
  return workers_[slot]->pid();
}

void Supervisor::send_job(std::size_t slot, const proto::Job& job) {
  if (workers_[slot]) workers_[slot]->send(job);
}

void Supervisor::send_shutdown(std::size_t slot) {
  if (workers_[slot]) workers_[slot]->send(proto::WorkerShutdown{});
}

void Supervisor::send_cancel(std::size_t slot, uint64_t id) {
  if (workers_[slot]) workers_[slot]->send(proto::Cancel{id});
}

void Supervisor::signal_worker(std::size_t slot, int sig) {
  if (workers_[slot]) workers_[slot]->kill(sig);
}

void Supervisor::kill_group(pid_t pgid) {
  if (pgid > 1) ::kill(-pgid, SIGKILL);
}

uint64_t Supervisor::rss_kb(pid_t pid) { return kiln::rss_kb(pid); }

void Supervisor::answer(ClientId client, proto::Result result) {
  const auto it = clients_.find(client);
  if (it != clients_.end()) it->second->send(result);
}

proto::Traced Supervisor::retrace(const std::optional<std::string>& file) {
  proto::Traced answer;
  if (file) {
    // The new file first: a path that cannot be written leaves the timeline being written as is.
    Expected<std::unique_ptr<Trace>> trace =
        Trace::open(*file, lanes_, now(), options_.trace_max_mb << 20);
    if (!trace) {
      answer.error = trace.error();
    } else {
      trace_ = std::move(*trace);  // the previous one, if any, is closed
      trace_file_ = *file;
      // The workers already running, marked where the timeline begins.
      for (std::size_t slot = 0; slot < workers_.size(); ++slot) {
        if (workers_[slot]) trace_->worker(slot, workers_[slot]->pid(), "worker running", now());
      }
      spdlog::info("writing the timeline to {}", printable(*file));
    }
  } else if (trace_) {
    trace_.reset();
    spdlog::info("the timeline {} is written", printable(trace_file_));
    trace_file_.clear();
  }
  if (trace_) answer.file = trace_file_;
  return answer;
}

void Supervisor::trace_worker(std::size_t slot, pid_t pid, const std::string& what) {
  if (trace_) trace_->worker(slot, pid, what, now());
}

void Supervisor::trace_job(const PoolJob& job, const proto::Result& result,
                           std::optional<std::size_t> slot, const PoolLoad& load) {
  if (trace_) trace_->job(job, result, slot, load, now());
}

void Supervisor::status(ClientId client, const proto::Status& status) {
  const auto it = clients_.find(client);
  if (it != clients_.end()) it->second->send(status);
}

void Supervisor::started(ClientId client, const proto::Started& started) {
  const auto it = clients_.find(client);
  if (it != clients_.end()) it->second->send(started);
}

}  // namespace kiln::supervisor
