// Access to tests/data/protocol-vectors.json and msgpack-to-JSON conversion for tests.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace kiln::testing {

// The parsed vectors file: $KILN_PROTOCOL_VECTORS if set, else the checkout's
// tests/data/protocol-vectors.json.
const nlohmann::json& protocol_vectors();

std::string from_hex(std::string_view hex);

// One msgpack object as JSON, bin written as {"$bin": "<hex>"} (the vectors' convention).
nlohmann::json msgpack_to_json(std::string_view bytes);

}  // namespace kiln::testing
