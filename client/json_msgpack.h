// Conversions between JSON (what people type and read) and msgpack (what the pool speaks) for
// the `kiln` command.
#pragma once

#include <nlohmann/json.hpp>

#include "common/protocol.h"

namespace kiln::client {

// JSON to one msgpack object (strings stay str, numbers stay numbers).
proto::RawObject to_msgpack(const nlohmann::json& value);

// One msgpack object to JSON. Bytes (bin) become text when they are valid UTF-8; otherwise base64,
// under the key `<key>_base64` inside a map, or as {"base64": "..."} elsewhere.
nlohmann::json to_json(const proto::RawObject& value);

}  // namespace kiln::client
