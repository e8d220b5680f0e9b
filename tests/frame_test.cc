#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "common/fd.h"
#include "common/frame.h"

namespace kiln {
namespace {

std::string frame(std::string_view body) {
  std::string out;
  append_frame_header(out, static_cast<uint32_t>(body.size()));
  out.append(body);
  return out;
}

struct Collected {
  std::vector<std::string> bodies;
  FrameReader::OnFrame sink() {
    return [this](std::string_view b) {
      bodies.emplace_back(b);
      return true;
    };
  }
};

TEST(FrameHeader, IsBigEndianLength) {
  std::string out;
  append_frame_header(out, 0x01020304);
  EXPECT_EQ(out, std::string("\x01\x02\x03\x04", 4));
}

TEST(FrameHeader, PatchWritesTheLengthOfWhatFollows) {
  std::string out = "xy";
  append_frame_header(out, 0);
  out += "hello";
  patch_frame_header(out, 2);
  EXPECT_EQ(out, std::string("xy\x00\x00\x00\x05hello", 11));
}

TEST(FrameReader, YieldsTheSameBodiesForEverySplitPoint) {
  const std::vector<std::string> bodies = {"a", std::string(300, 'b'), "ccc", std::string(5, '\0')};
  std::string stream;
  for (const auto& b : bodies) stream += frame(b);
  for (std::size_t i = 0; i <= stream.size(); ++i) {
    for (std::size_t j = i; j <= stream.size(); ++j) {
      FrameReader reader;
      Collected got;
      ASSERT_TRUE(reader.feed(std::string_view(stream).substr(0, i), got.sink()));
      ASSERT_TRUE(reader.feed(std::string_view(stream).substr(i, j - i), got.sink()));
      ASSERT_TRUE(reader.feed(std::string_view(stream).substr(j), got.sink()));
      ASSERT_EQ(got.bodies, bodies) << "split at " << i << " and " << j;
      EXPECT_EQ(reader.pending(), 0u);
    }
  }
}

TEST(FrameReader, TakesOneByteAtATime) {
  const std::string stream = frame("first") + frame("second");
  FrameReader reader;
  Collected got;
  for (char c : stream) ASSERT_TRUE(reader.feed(std::string_view(&c, 1), got.sink()));
  EXPECT_EQ(got.bodies, (std::vector<std::string>{"first", "second"}));
}

TEST(FrameReader, RejectsLengthZero) {
  FrameReader reader;
  Collected got;
  Expected<void> fed = reader.feed(std::string("\0\0\0\0", 4), got.sink());
  ASSERT_FALSE(fed);
  EXPECT_EQ(fed.error(), "frame: length 0");
  EXPECT_TRUE(reader.failed());
  EXPECT_TRUE(got.bodies.empty());
}

TEST(FrameReader, RejectsOversizeLengthBeforeBufferingTheBody) {
  FrameReader reader(1024);
  Collected got;
  std::string header;
  append_frame_header(header, 1025);
  // The header alone, split, is enough to fail; nothing of the body is kept.
  EXPECT_TRUE(reader.feed(header.substr(0, 3), got.sink()));
  Expected<void> fed = reader.feed(header.substr(3) + std::string(100, 'x'), got.sink());
  ASSERT_FALSE(fed);
  EXPECT_EQ(fed.error(), "frame: length 1025 exceeds the maximum of 1024");
  EXPECT_EQ(reader.pending(), 4u);
  // A failed reader ignores the rest, and gives the same failure again.
  Expected<void> again = reader.feed(frame("ok"), got.sink());
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), "frame: length 1025 exceeds the maximum of 1024");
  EXPECT_TRUE(got.bodies.empty());
}

TEST(FrameReader, AcceptsExactlyMaxFrame) {
  FrameReader reader(16);
  Collected got;
  EXPECT_TRUE(reader.feed(frame(std::string(16, 'z')), got.sink()));
  ASSERT_EQ(got.bodies.size(), 1u);
  EXPECT_EQ(got.bodies[0].size(), 16u);
}

TEST(FrameReader, RejectsLength0xffffffff) {
  FrameReader reader;
  Collected got;
  EXPECT_FALSE(reader.feed(std::string("\xff\xff\xff\xff", 4), got.sink()));
  EXPECT_TRUE(reader.failed());
}

TEST(FrameReader, BuffersOnlyWhatArrived) {
  FrameReader reader;
  Collected got;
  std::string header;
  append_frame_header(header, 60u << 20);
  EXPECT_TRUE(reader.feed(header + "abc", got.sink()));
  EXPECT_EQ(reader.pending(), 7u);
}

TEST(FrameReader, StopsWhenTheCallbackSaysSo) {
  FrameReader reader;
  int calls = 0;
  Expected<void> fed = reader.feed(frame("a") + frame("b"), [&](std::string_view) {
    ++calls;
    return false;
  });
  ASSERT_FALSE(fed);
  EXPECT_EQ(fed.error(), "");
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(reader.failed());
}

// A pipe whose read end does not block.
std::pair<UniqueFd, UniqueFd> nonblocking_pipe() {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
  return {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void write_all(int fd, const std::string& bytes) {
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
}

TEST(FrameInbox, QueuesWholeBodiesAcrossReadsAndSaysWhenAnFdHasNothingOrEnded) {
  auto [in, out] = nonblocking_pipe();
  FrameInbox inbox;
  EXPECT_EQ(*inbox.read_from(in.get()), FrameInbox::Read::kAgain);
  const std::string both = frame("first") + frame("second");
  write_all(out.get(), both.substr(0, 7));  // the first frame's header and 3 bytes of it
  EXPECT_EQ(*inbox.fill(in.get()), FrameInbox::Read::kAgain);
  EXPECT_FALSE(inbox.has_body());
  write_all(out.get(), both.substr(7));
  EXPECT_EQ(*inbox.fill(in.get()), FrameInbox::Read::kOk);
  EXPECT_EQ(inbox.take(), "first");
  EXPECT_EQ(*inbox.fill(in.get()), FrameInbox::Read::kOk) << "queued already: no read";
  EXPECT_EQ(inbox.take(), "second");
  EXPECT_FALSE(inbox.has_body());
  out.reset();
  EXPECT_EQ(*inbox.fill(in.get()), FrameInbox::Read::kEnd);
}

TEST(FrameInbox, ABadFrameOrAFailedReadIsAnErrorThatSaysWhich) {
  auto [in, out] = nonblocking_pipe();
  FrameInbox inbox(16);
  std::string big;
  append_frame_header(big, 17);
  write_all(out.get(), frame("ok") + big);
  Expected<FrameInbox::Read> bad = inbox.read_from(in.get());
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error_code(), "");
  EXPECT_EQ(bad.error(), "frame: length 17 exceeds the maximum of 16");
  EXPECT_EQ(FrameInbox::error_text(bad, "reading"), bad.error());
  EXPECT_EQ(inbox.take(), "ok") << "the bodies before the bad frame stay queued";
  FrameInbox closed;
  Expected<FrameInbox::Read> failed = closed.read_from(out.get());
  ASSERT_FALSE(failed) << "a write end: EBADF";
  EXPECT_EQ(failed.error_code(), FrameInbox::kReadFailed);
  EXPECT_EQ(failed.error(), std::strerror(EBADF));
  EXPECT_EQ(FrameInbox::error_text(failed, "reading"),
            std::string("reading: ") + std::strerror(EBADF));
}

}  // namespace
}  // namespace kiln
