#include "common/build_key.h"

#include <unistd.h>

#include <cstring>
#include <vector>

#include <sodium.h>

#include "common/fd.h"

namespace kiln {
namespace {

void ensure_sodium() {
  static const bool ready = [] {
    if (sodium_init() < 0) fatal_errno("sodium_init");
    return true;
  }();
  (void)ready;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  const int variant = sodium_base64_VARIANT_ORIGINAL;
  std::string out(sodium_base64_ENCODED_LEN(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), variant);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out(text.size() / 4 * 3 + 3, '\0');
  size_t len = 0;
  const char* end = nullptr;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
      end != text.data() + text.size()) {
    return std::nullopt;
  }
  out.resize(len);
  return out;
}

std::string key_id(std::string_view key) {
  unsigned char hash[crypto_generichash_BYTES];  // 32 bytes: BLAKE2b-256
  static_assert(crypto_generichash_BYTES == 32);
  crypto_generichash(hash, sizeof hash, reinterpret_cast<const unsigned char*>(key.data()),
                     key.size(), nullptr, 0);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 8; ++i) {
    id += kHex[hash[i] >> 4];
    id += kHex[hash[i] & 0xf];
  }
  return id;
}

std::optional<std::string> take_key_from_env() {
  static constexpr std::string_view kName = "KILN_KEY=";
  std::optional<std::string> text;
  std::vector<char*> entries;  // every KILN_KEY= entry, the first being getenv's
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::string_view(*e).starts_with(kName)) entries.push_back(*e);
  }
  if (entries.empty()) return text;
  text = std::string(entries.front() + kName.size());
  ::unsetenv("KILN_KEY");  // every entry of that name
  for (char* entry : entries) sodium_memzero(entry, std::strlen(entry));
  return text;
}

std::string random_key(std::size_t bytes) {
  ensure_sodium();
  std::string key(bytes, '\0');
  randombytes_buf(key.data(), key.size());
  return key;
}

}  // namespace kiln
