// Text helpers for bytes that must travel as msgpack str (which is UTF-8).
#pragma once

#include <string>
#include <string_view>

namespace kiln {

bool is_valid_utf8(std::string_view bytes);

// The bytes with every invalid UTF-8 sequence replaced by U+FFFD.
std::string to_valid_utf8(std::string_view bytes);

}  // namespace kiln
