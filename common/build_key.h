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

// A fresh random key of `bytes` bytes.
std::string random_key(std::size_t bytes = 32);

}  // namespace kiln
