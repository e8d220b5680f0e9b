// A compile_commands.json: any bytes give entries or an error message, never an exception or a
// crash; every entry has a command.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "client/parsers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto entries = kiln::client::parse_compile_db(text, "fuzz.json", "");
  if (!entries) {
    if (entries.error().empty()) __builtin_trap();
    return 0;
  }
  for (const auto& e : *entries) {
    if (e.argv.empty()) __builtin_trap();
  }
  return 0;
}
