// A compile_commands.json: any bytes give entries and problems, or an error message, never an
// exception or a crash; every entry has a command, every problem a message.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "client/parsers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto db = kiln::client::parse_compile_db(text, "fuzz.json", "");
  if (!db) {
    if (db.error().empty()) __builtin_trap();
    return 0;
  }
  for (const auto& e : db->entries) {
    if (e.argv.empty()) __builtin_trap();
  }
  for (const auto& p : db->problems) {
    if (p.empty()) __builtin_trap();
  }
  return 0;
}
