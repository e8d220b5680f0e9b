// A PoolEnv without processes or a loop, for the tests of the pool's rules (pool_test.cc,
// distcc_unit_test.cc): it starts "workers" by handing out pids, keeps what the pool sends and
// answers, and lets the test set the clock, the RSS and whether a start fails.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "supervisor/pool.h"

namespace kiln::supervisor {

class FakeEnv : public PoolEnv {
 public:
  Micros clock = 1'000'000;
  pid_t next_pid = 100;
  bool spawn_fails = false;
  std::map<std::size_t, pid_t> pids;  // slot -> current pid
  std::vector<std::pair<std::size_t, proto::Job>> jobs_sent;
  std::vector<std::size_t> shutdowns_sent;
  std::vector<std::pair<std::size_t, uint64_t>> cancels_sent;
  std::vector<std::pair<std::size_t, int>> signals;
  std::vector<pid_t> groups_killed;
  std::map<pid_t, uint64_t> rss;
  std::vector<std::pair<ClientId, proto::Result>> answers;
  std::vector<std::pair<ClientId, proto::Status>> statuses;
  std::vector<std::pair<ClientId, proto::Started>> started_said;
  int starts = 0;

  Micros now() override { return clock; }
  Expected<pid_t> start_worker(std::size_t slot) override {
    ++starts;
    if (spawn_fails) return fail("no such file");
    pids[slot] = next_pid;
    return next_pid++;
  }
  void send_job(std::size_t slot, const proto::Job& job) override {
    jobs_sent.emplace_back(slot, job);
  }
  void send_shutdown(std::size_t slot) override { shutdowns_sent.push_back(slot); }
  void send_cancel(std::size_t slot, uint64_t id) override { cancels_sent.emplace_back(slot, id); }
  void signal_worker(std::size_t slot, int sig) override { signals.emplace_back(slot, sig); }
  void kill_group(pid_t pgid) override { groups_killed.push_back(pgid); }
  uint64_t rss_kb(pid_t pid) override { return rss.count(pid) ? rss[pid] : 1000; }
  void answer(ClientId client, proto::Result result) override {
    answers.emplace_back(client, std::move(result));
  }
  void status(ClientId client, const proto::Status& s) override {
    statuses.emplace_back(client, s);
  }
  void started(ClientId client, const proto::Started& s) override {
    started_said.emplace_back(client, s);
  }

  const proto::Result& last() const { return answers.back().second; }
  std::string last_code() const { return last().error ? last().error->code : "ok"; }
};

}  // namespace kiln::supervisor
