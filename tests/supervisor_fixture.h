// The fixture of the tests that run a real kiln-supervisor (supervisor_test.cc, tool_test.cc):
// a started supervisor that has said hello, ended by a clean shutdown that checks every job was
// answered exactly once, and the helpers those tests read results with.
#pragma once

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tests/supervisor_harness.h"

namespace kiln::testing {

// "ok", or the error code of a result ("<no result>" when none came).
std::string code_of(const std::optional<proto::Result>& r);
// The value of a result that must have succeeded (a failed expectation otherwise).
nlohmann::json value_of(const std::optional<proto::Result>& r);

class SupervisorFixture : public ::testing::Test {
 protected:
  void start(const SupervisorStart& s = {});
  // A clean shutdown, unless the test ended the supervisor itself (ended_).
  void TearDown() override;
  // The pids of the workers the stats list.
  std::vector<pid_t> worker_pids();
  // Waits until `n` workers are up and idle.
  bool all_idle(std::size_t n = 2);

  std::unique_ptr<SupervisorHarness> sup_;
  bool ended_ = false;
};

}  // namespace kiln::testing
