// Text helpers for bytes that must travel as msgpack str (which is UTF-8), and for numbers given
// as text on a command line.
#pragma once

#include <cstdint>
#include <optional>
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

// `text` as a whole unsigned number in `base` (no sign, no space, nothing after it) within
// [min, max]; nullopt otherwise.
std::optional<uint64_t> parse_unsigned(const char* text, int base, uint64_t min = 0,
                                       uint64_t max = UINT64_MAX);

}  // namespace kiln
