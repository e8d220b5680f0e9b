// An allocation-free structural walk over msgpack bytes. Run on every untrusted body before
// msgpack::unpack: it proves that every element a container declares is really present and that
// nesting is bounded, so what unpack later allocates is bounded by the body's size (msgpack-c
// allocates array/map storage from the declared count; unpack_limit alone cannot say "no more
// elements than the remaining bytes can hold" at every level).
#pragma once

#include <msgpack.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace kiln::mp {

// Deepest nesting accepted in any message (the top-level map is depth 1).
inline constexpr unsigned kMaxDepth = 64;

enum class Kind { kNil, kBool, kUint, kInt, kFloat, kStr, kBin, kExt, kArray, kMap };

const char* kind_name(Kind kind);

// The name of an unpacked object's type, in the same words as kind_name ("uint", "str", ...).
const char* type_name(const msgpack::object& o);

// The value of the `key` field of an unpacked map (the last one, if repeated), or null when it
// has none or is not a map.
const msgpack::object* field(const msgpack::object& map, std::string_view key);

struct Header {
  Kind kind = Kind::kNil;
  std::size_t header_len = 0;  // bytes of type tag and length fields
  uint64_t size = 0;           // str/bin/ext: byte length; array: elements; map: pairs
  uint64_t value = 0;          // kUint: the value; kBool: 0 or 1
};

// Reads the header of the object at data[off]. False if the bytes there are truncated or 0xc1.
bool read_header(std::string_view data, std::size_t off, Header& h);

// Advances `off` past one complete object, or fails saying why ("truncated", "invalid byte 0xc1
// at offset N", "nesting deeper than 64"), `off` unchanged. With `objects`, adds
// the number of objects it holds, itself and every element and key at any depth: what
// msgpack::unpack would allocate one msgpack::object (24 bytes) for.
Expected<void> skip_object(std::string_view data, std::size_t& off, unsigned max_depth,
                           uint64_t* objects = nullptr);

// For msgpack::unpack: every str, bin and ext refers into the unpacked bytes, none is copied.
bool reference_everything(msgpack::type::object_type, std::size_t, void*);

// One object (a job's payload or value) unpacked, once skip_object has counted it: unpacked, every
// msgpack object costs 24 bytes however small it was on the wire (60 MB of small ints took a
// worker to 1.47 GB), so more than `max_objects` is refused before anything is allocated. The
// object's strings refer into `bytes`: keep them alive as long as the handle.
Expected<msgpack::object_handle> unpack_counted(std::string_view bytes, uint64_t max_objects);

}  // namespace kiln::mp
