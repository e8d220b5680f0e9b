// The pool's part in running jobs on distcc hosts (docs/design.md "distcc hosts"): which queued
// job a host's slot may take, and what a host slot's answer means. The hosts' own state is
// supervisor/hosts.h; the worker runs the distcc client (worker/exec_job.cc).
#include <spdlog/spdlog.h>

#include "common/distcc.h"
#include "supervisor/job_name.h"
#include "supervisor/pool.h"

namespace kiln::supervisor {

bool WorkerPool::host_takes(std::size_t slot, Job& job) {
  const std::optional<std::size_t> host = hosts_.host_of(slot);
  if (!host) return true;
  if (!hosts_.usable(*host, env_.now()) || (job.failed_hosts >> *host & 1) != 0) return false;
  if (job.remote == PoolJob::Remote::kUnknown) {
    job.remote = job.kind == "exec" && distcc::distributable_output(exec_argv(job.payload))
                     ? PoolJob::Remote::kYes
                     : PoolJob::Remote::kNo;
  }
  return job.remote == PoolJob::Remote::kYes;
}

bool WorkerPool::host_answered(std::size_t slot, Sent& e, const proto::WorkerResult& result) {
  const std::optional<std::size_t> host = hosts_.host_of(slot);
  if (!host) return false;
  const std::string_view code = result.error ? std::string_view(result.error->code) : "";
  if (code == proto::code::kHostFailed) {
    const std::string& why = result.error->message;
    hosts_.failed(*host, why, env_.now());
    spdlog::warn("distcc host {} failed job {} ({}); backed off, the job runs again elsewhere: {}",
                 hosts_.spec(*host).name, e.job.id, e.job.name, why);
    e.job.failed_hosts |= uint64_t{1} << *host;
  } else if (code == proto::code::kLocalOnly) {
    spdlog::info("distcc cannot compile job {} ({}) on a host; it runs locally: {}", e.job.id,
                 e.job.name, result.error->message);
    e.job.remote = PoolJob::Remote::kNo;
  } else {
    if (code != proto::code::kTimeout) hosts_.succeeded(*host);
    return false;
  }
  put_back(e);
  return true;
}

void WorkerPool::add_host_stats(proto::Stats& st) const {
  if (hosts_.size() == 0) return;
  std::vector<proto::HostInfo> info = hosts_.info(env_.now());
  for (std::size_t i = 0, alive = 0; i < slots_.size(); ++i) {
    const Slot& s = slots_[i];
    const std::optional<std::size_t> host = hosts_.host_of(i);
    if (host && running(s) != nullptr) ++info[*host].running;
    if (s.state == State::kEmpty || s.state == State::kBackoff) continue;
    if (host) st.worker_list[alive].host = info[*host].host;
    ++alive;
  }
  st.hosts = std::move(info);
}

}  // namespace kiln::supervisor
