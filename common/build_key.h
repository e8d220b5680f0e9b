// The build key: which toolchain and configuration a pool serves (docs/protocol.md, `key_id`).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace kiln {

// Standard base64 (RFC 4648, with padding).
std::string base64_encode(std::string_view bytes);
// Strict: the whole text must be padded standard base64; nullopt otherwise.
std::optional<std::string> base64_decode(std::string_view text);

// The first 16 lowercase hex digits of BLAKE2b-256 (unkeyed) of the key bytes.
std::string key_id(std::string_view key);

// The text of $KILN_KEY, or nullopt when it is unset, taken out of the environment: removed
// from `environ` and its bytes zeroed where they are, so /proc/<pid>/environ (which shows the
// environment block the process started with, whatever unsetenv did) no longer holds it, and
// nothing this process starts inherits it.
std::optional<std::string> take_key_from_env();

// A fresh random key of `bytes` bytes.
std::string random_key(std::size_t bytes = 32);

}  // namespace kiln
