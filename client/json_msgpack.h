// Conversions between JSON (what people type and read) and msgpack (what the pool speaks) for
// the `kiln` command.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "common/protocol.h"

namespace kiln::client {

// JSON to one msgpack object (strings stay str, numbers stay numbers).
proto::RawObject to_msgpack(const nlohmann::json& value);

// One msgpack object to JSON. Bytes (bin) become text when they are valid UTF-8; otherwise base64,
// under the key `<key>_base64` inside a map, or as {"base64": "..."} elsewhere.
nlohmann::json to_json(const proto::RawObject& value);

// JSON as `kiln` prints it (indent < 0: one line): ASCII only, every other character escaped as
// \uXXXX, so that no control character of a job's name or output (C0, or a C1 such as CSI,
// U+009B, which some terminals obey) reaches a terminal raw.
std::string json_text(const nlohmann::json& value, int indent = -1);

}  // namespace kiln::client
