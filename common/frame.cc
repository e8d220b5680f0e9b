#include "common/frame.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kiln {

void append_frame_header(std::string& out, uint32_t length) {
  const char bytes[kFrameHeaderSize] = {static_cast<char>(length >> 24),
                                        static_cast<char>(length >> 16),
                                        static_cast<char>(length >> 8), static_cast<char>(length)};
  out.append(bytes, sizeof bytes);
}

void patch_frame_header(std::string& out, std::size_t start) {
  const auto length = static_cast<uint32_t>(out.size() - start - kFrameHeaderSize);
  out[start] = static_cast<char>(length >> 24);
  out[start + 1] = static_cast<char>(length >> 16);
  out[start + 2] = static_cast<char>(length >> 8);
  out[start + 3] = static_cast<char>(length);
}

namespace {

uint32_t read_be32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

}  // namespace

bool FrameReader::check_length(uint32_t length) {
  if (length == 0) {
    state_ = fail("frame: length 0");
  } else if (length > max_frame_) {
    state_ = fail("frame: length " + std::to_string(length) + " exceeds the maximum of " +
                  std::to_string(max_frame_));
  }
  return state_.ok();
}

Expected<void> FrameReader::feed(std::string_view bytes, const OnFrame& on_frame) {
  while (state_ && !bytes.empty()) {
    // Fast path: nothing buffered and a whole frame in the input: hand it over without copying.
    if (header_len_ == 0 && bytes.size() >= kFrameHeaderSize) {
      const uint32_t length = read_be32(reinterpret_cast<const unsigned char*>(bytes.data()));
      if (!check_length(length)) break;
      if (bytes.size() - kFrameHeaderSize >= length) {
        if (!on_frame(bytes.substr(kFrameHeaderSize, length))) state_ = fail("");
        bytes.remove_prefix(kFrameHeaderSize + length);
        continue;
      }
    }
    if (header_len_ < kFrameHeaderSize) {
      const std::size_t n = std::min(kFrameHeaderSize - header_len_, bytes.size());
      std::copy_n(bytes.data(), n, header_ + header_len_);
      header_len_ += n;
      bytes.remove_prefix(n);
      if (header_len_ < kFrameHeaderSize) break;
      body_len_ = read_be32(header_);
      if (!check_length(body_len_)) break;
    }
    const std::size_t n = std::min<std::size_t>(body_len_ - body_.size(), bytes.size());
    body_.append(bytes.data(), n);
    bytes.remove_prefix(n);
    if (body_.size() == body_len_) {
      if (!on_frame(body_)) state_ = fail("");
      body_.clear();
      if (body_.capacity() > (64u << 10)) body_.shrink_to_fit();  // give large frames back
      header_len_ = 0;
    }
  }
  return state_;
}

Expected<FrameInbox::Read> FrameInbox::read_from(int fd) {
  char buf[64 << 10];
  ssize_t n;
  do {
    n = ::read(fd, buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  if (n == 0 || (n < 0 && errno == ECONNRESET)) return Read::kEnd;
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return Read::kAgain;
  if (n < 0) return fail(std::strerror(errno), kReadFailed);
  Expected<void> fed =
      reader_.feed(std::string_view(buf, static_cast<std::size_t>(n)), [this](std::string_view b) {
        bodies_.emplace_back(b);
        return true;
      });
  if (!fed) return fail(fed.error());
  return Read::kOk;
}

Expected<FrameInbox::Read> FrameInbox::fill(int fd) {
  while (bodies_.empty()) {
    Expected<Read> r = read_from(fd);
    if (!r || *r != Read::kOk) return r;
  }
  return Read::kOk;
}

std::string FrameInbox::error_text(const Expected<Read>& failed, std::string_view reading) {
  if (failed.error_code() != kReadFailed) return failed.error();
  return std::string(reading) + ": " + failed.error();
}

std::string FrameInbox::take() {
  std::string body = std::move(bodies_.front());
  bodies_.pop_front();
  return body;
}

}  // namespace kiln
