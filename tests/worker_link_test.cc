// The worker's link reader against every invalid frame of tests/data/protocol-vectors.json, and
// against commands split across reads.
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "tests/process.h"
#include "tests/vectors.h"
#include "worker/link.h"

namespace kiln::worker {
namespace {

using kiln::testing::from_hex;
using kiln::testing::pipe_pair;
using kiln::testing::protocol_vectors;

TEST(WorkerLink, RejectsEveryInvalidVector) {
  for (const auto& v : protocol_vectors()["invalid"]) {
    SCOPED_TRACE(v["name"].get<std::string>());
    auto [r, w] = pipe_pair();
    const std::string bytes = from_hex(v["frame_hex"].get<std::string>());
    // Room for the largest vector (100 KB of nesting) without a reader on the other end.
    ASSERT_GE(::fcntl(w.get(), F_SETPIPE_SZ, 1 << 20), static_cast<int>(bytes.size()));
    ASSERT_EQ(::write(w.get(), bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    w.reset();
    Link link(r.get(), -1, kDefaultMaxFrame);
    proto::WorkerCommand command;
    if (v["name"] == "shutdown drain not bool") {
      // `drain` belongs to the client link; on the worker link it is an unknown key, ignored.
      Expected<Link::Received> received = link.receive(command);
      ASSERT_TRUE(received) << received.error();
      EXPECT_EQ(*received, Link::Received::kMessage);
      EXPECT_TRUE(std::holds_alternative<proto::WorkerShutdown>(command));
      continue;
    }
    Expected<Link::Received> received = link.receive(command);
    ASSERT_FALSE(received);
    EXPECT_NE(received.error(), "");
  }
}

TEST(WorkerLink, ReadsCommandsThatArriveTogetherAndEndsAtEof) {
  auto [r, w] = pipe_pair();
  std::string frames;
  proto::encode(proto::Job{1, "echo", proto::RawObject::nil(), 0}, frames);
  proto::encode(proto::WorkerShutdown{}, frames);
  ASSERT_EQ(::write(w.get(), frames.data(), frames.size()), static_cast<ssize_t>(frames.size()));
  w.reset();
  Link link(r.get(), -1, kDefaultMaxFrame);
  proto::WorkerCommand command;
  ASSERT_EQ(*link.receive(command), Link::Received::kMessage);
  EXPECT_EQ(std::get<proto::Job>(command).id, 1u);
  ASSERT_EQ(*link.receive(command), Link::Received::kMessage);
  EXPECT_TRUE(std::holds_alternative<proto::WorkerShutdown>(command));
  EXPECT_EQ(*link.receive(command), Link::Received::kEnd);
}

}  // namespace
}  // namespace kiln::worker
