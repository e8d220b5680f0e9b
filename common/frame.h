// Framing (docs/protocol.md): a 4-byte big-endian body length L, 1 <= L <= max_frame, then L bytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kiln {

inline constexpr uint32_t kDefaultMaxFrame = 64u << 20;
inline constexpr std::size_t kFrameHeaderSize = 4;

// Appends the 4-byte header of a body of `length` bytes.
void append_frame_header(std::string& out, uint32_t length);

// Patches the header at out[start..start+4) to the length of everything after it.
void patch_frame_header(std::string& out, std::size_t start);

// Incremental frame reader: takes bytes as they arrive, in any split, and yields whole bodies.
// A length of 0 or above max_frame is rejected as soon as the 4 header bytes are in, before any
// of the body is buffered; the body buffer grows only with bytes actually received. After an
// error the reader stays failed: it ignores further input and gives the same failure again.
class FrameReader {
 public:
  // Called for each whole body; the view is valid only during the call. Return false to stop
  // reading: the rest of the input is dropped and the reader is stopped (like an error).
  using OnFrame = std::function<bool(std::string_view body)>;

  explicit FrameReader(uint32_t max_frame = kDefaultMaxFrame) : max_frame_(max_frame) {}

  // A failure once the reader has failed or been stopped: the framing's error, or an empty
  // message if the callback stopped it.
  Expected<void> feed(std::string_view bytes, const OnFrame& on_frame);

  bool failed() const { return !state_.ok(); }
  // Bytes of an unfinished frame buffered so far (header included).
  std::size_t pending() const { return header_len_ + body_.size(); }

 private:
  bool check_length(uint32_t length);

  uint32_t max_frame_;
  unsigned char header_[kFrameHeaderSize] = {};
  std::size_t header_len_ = 0;
  uint32_t body_len_ = 0;  // valid once header_len_ == 4
  std::string body_;
  Expected<void> state_;  // a failure once failed or stopped
};

// Whole bodies read from an fd: the one owner of "read a chunk, feed a FrameReader, queue the
// bodies" for every reader of a framed fd, blocking or not (a worker's link, a tool's, the
// client's daemon link, the tests' and benchmarks' channels).
class FrameInbox {
 public:
  enum class Read { kOk, kAgain, kEnd };
  // The code of a failure of read(2) itself; its message is strerror's text. A failure without a
  // code: the bytes broke the framing, and the message says how.
  static constexpr const char* kReadFailed = "read_failed";

  explicit FrameInbox(uint32_t max_frame = kDefaultMaxFrame) : reader_(max_frame) {}

  // One read(2) of fd (retried on EINTR), its whole bodies queued: kOk (perhaps with no whole
  // body yet), kAgain (a non-blocking fd had nothing), kEnd (end of file, or ECONNRESET), or a
  // failure (kReadFailed, or the framing's error).
  Expected<Read> read_from(int fd);
  // read_from until a body is queued: kOk once one is (at once if one was), else what stopped it.
  Expected<Read> fill(int fd);

  bool has_body() const { return !bodies_.empty(); }
  // The oldest queued body; only when has_body().
  std::string take();

  // A failure of read_from or fill, for a message: the framing's error, or `reading` (what was
  // read, "read from the supervisor") and the read's error.
  static std::string error_text(const Expected<Read>& failed, std::string_view reading);

 private:
  FrameReader reader_;
  std::deque<std::string> bodies_;
};

}  // namespace kiln
