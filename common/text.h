// Text helpers for bytes that must travel as msgpack str (which is UTF-8).
#pragma once

#include <string>
#include <string_view>

namespace kiln {

bool is_valid_utf8(std::string_view bytes);

// The bytes with every invalid UTF-8 sequence replaced by U+FFFD.
std::string to_valid_utf8(std::string_view bytes);

// Client-controlled text made safe to put in a log line or an error message: valid UTF-8, with
// control characters and backslashes escaped (\n, \x00, \\), and cut after about `max` bytes
// with "... (N bytes)" saying how long it was.
std::string printable(std::string_view bytes, std::size_t max = 200);

}  // namespace kiln
