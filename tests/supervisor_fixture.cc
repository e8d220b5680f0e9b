#include "tests/supervisor_fixture.h"

#include <algorithm>

#include "tests/worker_harness.h"

namespace kiln::testing {

std::string code_of(const std::optional<proto::Result>& r) {
  if (!r) return "<no result>";
  return r->ok ? "ok" : (r->error ? r->error->code : "<no error>");
}

nlohmann::json value_of(const std::optional<proto::Result>& r) {
  EXPECT_TRUE(r && r->ok && r->value) << code_of(r) << (r && r->error ? r->error->message : "");
  return r && r->value ? from_raw(*r->value) : nlohmann::json();
}

void SupervisorFixture::start(const SupervisorStart& s) {
  sup_ = std::make_unique<SupervisorHarness>(s);
  ASSERT_TRUE(sup_->await_hello());
}

void SupervisorFixture::TearDown() {
  if (!sup_ || ended_) return;
  sup_->send(proto::Shutdown{});
  EXPECT_TRUE(sup_->await_bye());
  EXPECT_EQ(sup_->process().exit_code(), 0) << sup_->stderr_text();
  // Every answer exactly once.
  for (const auto& [id, n] : sup_->result_counts) EXPECT_EQ(n, 1) << "job " << id;
}

std::vector<pid_t> SupervisorFixture::worker_pids() {
  std::vector<pid_t> pids;
  const std::optional<proto::Stats> st = sup_->stats();
  if (st) {
    for (const auto& w : st->worker_list) pids.push_back(static_cast<pid_t>(w.pid));
  }
  return pids;
}

bool SupervisorFixture::all_idle(std::size_t n) {
  return wait_until(
      [&] {
        auto st = sup_->stats();
        return st && st->worker_list.size() == n &&
               std::all_of(st->worker_list.begin(), st->worker_list.end(),
                           [](const auto& w) { return w.state == "idle"; });
      },
      20s);
}

}  // namespace kiln::testing
