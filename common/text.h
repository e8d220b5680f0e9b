// Text helpers for bytes that must travel as msgpack str (which is UTF-8), and for numbers given
// as text on a command line.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

bool is_valid_utf8(std::string_view bytes);

// The bytes with every invalid UTF-8 sequence replaced by U+FFFD.
std::string to_valid_utf8(std::string_view bytes);

// Client-controlled text made safe to put in a log line, an error message or on a terminal:
// valid UTF-8, with control characters and backslashes escaped (\n, \x00, \x1b, \\, and the
// C1 controls as \u009b), and cut after about `max` bytes with "... (N bytes)" saying how long
// it was. The one escaping helper for text that is not ours.
std::string printable(std::string_view bytes, std::size_t max = 200);

// Text from outside (a tool's phase or error) bounded for the links and the log: valid UTF-8
// (invalid sequences replaced by U+FFFD) and, when it is longer than `max` bytes, cut before the
// first character that would take it past `max`, followed by "... (N bytes)" saying how long it
// was. Costs time in `max`, not in the text's length.
std::string shortened(std::string_view text, std::size_t max);

// `text` as a whole unsigned number in `base` (no sign, no space, nothing after it) within
// [min, max]; nullopt otherwise.
std::optional<uint64_t> parse_unsigned(const char* text, int base, uint64_t min = 0,
                                       uint64_t max = UINT64_MAX);

// The pieces of `text` between `sep`s, as std::getline gives them: "a::b" is "a", "", "b", and a
// `sep` at the end ends the last piece rather than starting an empty one ("" has none). Without
// iostreams, which would bring their locales into the static binaries.
std::vector<std::string_view> split(std::string_view text, char sep);

}  // namespace kiln
