#include "client/submit_window.h"

#include <algorithm>
#include <chrono>

namespace kiln::client {

SubmitWindow::SubmitWindow(Pool& pool, std::size_t window)
    : pool_(pool), window_(std::max<std::size_t>(window, 1)) {
  resubmitter_ = std::thread(&SubmitWindow::resubmit_loop, this);
}

SubmitWindow::~SubmitWindow() {
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ == 0; });
    stopping_ = true;
  }
  cv_.notify_all();
  resubmitter_.join();
}

void SubmitWindow::submit(std::string kind, proto::RawObject payload,
                          std::optional<uint64_t> timeout_ms, std::optional<int64_t> priority,
                          Pool::Callback on_result, Pool::StatusCallback on_status) {
  auto job = std::make_shared<Job>(Job{std::move(kind), std::move(payload), timeout_ms, priority,
                                       std::move(on_result), std::move(on_status)});
  {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return in_flight_ < window_; });
    ++in_flight_;
    ++sent_;
  }
  send(std::move(job));
}

void SubmitWindow::send(std::shared_ptr<Job> job) {
  // The pool copies the payload into its frame; ours is kept in case it comes back overloaded.
  // Called without mu_: a pool whose supervisor is gone answers in this very call.
  pool_.submit(
      job->kind, job->payload, job->timeout_ms, job->priority,
      [this, job](proto::Result r) {
        std::unique_lock lock(mu_);
        --sent_;
        if (!r.ok && r.error && r.error->code == proto::code::kOverloaded) {
          overloaded_.push_back(job);
          cv_.notify_all();
          return;
        }
        --in_flight_;
        cv_.notify_all();
        lock.unlock();
        job->on_result(std::move(r));
      },
      job->on_status);
}

void SubmitWindow::resubmit_loop() {
  using namespace std::chrono_literals;
  auto pause = 10ms;
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stopping_ || !overloaded_.empty(); });
    if (stopping_) return;
    if (sent_ != 0) {
      // Room comes when one of ours finishes: wait for that, not for a clock.
      const std::size_t before = sent_;
      cv_.wait(lock, [&] { return stopping_ || sent_ < before; });
      if (stopping_) return;
      pause = 10ms;
    } else {
      // Nothing of ours runs: the queue is full of other clients' jobs. Back off.
      cv_.wait_for(lock, pause, [&] { return stopping_; });
      if (stopping_) return;
      pause = std::min(pause * 2, std::chrono::milliseconds(500));
    }
    std::shared_ptr<Job> job = std::move(overloaded_.front());
    overloaded_.pop_front();
    ++sent_;
    lock.unlock();
    send(std::move(job));
    lock.lock();
  }
}

}  // namespace kiln::client
