#include "supervisor/rules.h"

#include <csignal>

#include "common/fd.h"

namespace kiln::supervisor {

Rules::Rules(Config config) : config_(config), generation_(config.workers) {}

Rules::Decision Rules::on_signal(int signum) {
  if (signum == SIGCHLD) return {Act::kEndOrphans, "SIGCHLD"};
  if (signum == SIGINT && ++sigints_ >= 2) {
    return {Act::kKillAll, "second SIGINT: killing the workers now"};
  }
  return {Act::kShutDown, std::string("received ") + signal_name(signum)};
}

Rules::Decision Rules::on_client_end() const {
  if (!config_.socket) {
    // Its open jobs are answered by the shutdown: there is still a write side to answer on.
    return {Act::kShutDown, "the client link ended"};
  }
  return {Act::kDropClient, "the client went"};
}

std::optional<Micros> Rules::idle(bool idle, Micros now) {
  if (!config_.socket || config_.idle_exit_ms == 0 || !idle) {
    idle_since_ = 0;
    return std::nullopt;
  }
  if (idle_since_ == 0) idle_since_ = now;
  return idle_since_ + config_.idle_exit_ms * 1000;
}

std::optional<std::string> Rules::idle_exit_due(Micros now) const {
  if (idle_since_ == 0 || now < idle_since_ + config_.idle_exit_ms * 1000) return std::nullopt;
  return "no client and no job for " + std::to_string(config_.idle_exit_ms) + " ms";
}

}  // namespace kiln::supervisor
