// supervisor::Pipe, the libuv stream wrapper under every client and worker link, on a socketpair
// inside one loop: writes batched in order, and an idle link that gives its burst buffers back
// (a daemon holds many idle clients; the long soak found their buffers adding up). Every test
// closes its handles and ends with uv_loop_close() == 0.
#include "supervisor/uv_pipe.h"

#include <sys/socket.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "common/fd.h"

namespace kiln::supervisor {
namespace {

// A loop with two Pipes on the ends of a socketpair: `out` writes, `in` collects what arrives.
class PipePair : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(uv_loop_init(&loop_), 0);
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    out_ = std::make_unique<Pipe>(&loop_);
    in_ = std::make_unique<Pipe>(&loop_);
    ASSERT_EQ(out_->open(fds[0]), 0);
    ASSERT_EQ(in_->open(fds[1]), 0);
    ASSERT_EQ(in_->start_reading({[this](std::string_view b) { received_.append(b); },
                                  [this](int) { ended_ = true; }}),
              0);
    out_->on_drained([this] { ++drained_; });
  }
  void TearDown() override {
    if (!out_ || !in_) return;  // SetUp failed
    int closed = 0;
    out_->close([&] { ++closed; });
    in_->close([&] { ++closed; });
    uv_run(&loop_, UV_RUN_DEFAULT);
    EXPECT_EQ(closed, 2);
    EXPECT_EQ(uv_loop_close(&loop_), 0);
  }
  // Runs the loop until `expected` bytes have arrived and the writer has drained.
  void deliver(std::size_t expected) {
    while (received_.size() < expected || out_->queued() != 0) {
      ASSERT_NE(uv_run(&loop_, UV_RUN_ONCE), 0)
          << "the loop ran dry after " << received_.size() << " bytes";
    }
  }

  uv_loop_t loop_;
  std::unique_ptr<Pipe> out_, in_;
  std::string received_;
  bool ended_ = false;
  int drained_ = 0;
};

TEST_F(PipePair, WritesQueuedWhileOneIsInFlightGoOutInOrder) {
  std::string sent;
  for (char c = 'a'; c <= 'z'; ++c) {
    const std::string chunk(100'000 + c, c);  // more than the socket buffer takes at once
    out_->write(chunk);
    sent += chunk;
  }
  deliver(sent.size());
  EXPECT_EQ(received_.size(), sent.size());
  EXPECT_TRUE(received_ == sent) << "bytes reordered or lost";
  EXPECT_GE(drained_, 1);
  EXPECT_FALSE(out_->write_failed());
  EXPECT_FALSE(ended_);
}

TEST_F(PipePair, AnIdleLinkKeepsNoBurstSizedBuffer) {
  const std::size_t burst = 4u << 20;
  out_->write(std::string(burst / 2, 'x'));  // in flight
  out_->write(std::string(burst / 2, 'y'));  // queued behind it
  EXPECT_GE(out_->held_bytes(), burst);
  deliver(burst);
  EXPECT_EQ(received_.size(), burst);
  EXPECT_LE(out_->held_bytes(), 2 * (64u << 10));

  // Small frames afterwards reuse a small buffer, and still arrive.
  out_->write("after");
  deliver(burst + 5);
  EXPECT_EQ(received_.substr(burst), "after");
  EXPECT_LE(out_->held_bytes(), 2 * (64u << 10));
}

}  // namespace
}  // namespace kiln::supervisor
