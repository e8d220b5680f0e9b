// Expected<T>: a value or a human-readable error, for what can fail in normal use.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace kiln {

struct Failure {
  std::string message;
  std::string code;  // "" unless callers branch on what failed (say which codes a function gives)
};

inline Failure fail(std::string message, std::string code = "") {
  return Failure{std::move(message), std::move(code)};
}

template <class T>
class [[nodiscard]] Expected {
 public:
  Expected(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Expected(Failure f) : v_(std::move(f)) {}    // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }

  const std::string& error() const { return std::get<1>(v_).message; }
  const std::string& error_code() const { return std::get<1>(v_).code; }

 private:
  std::variant<T, Failure> v_;
};

// Expected<void>: success without a value, or a Failure. `return {};` reports success.
template <>
class [[nodiscard]] Expected<void> {
 public:
  Expected() = default;
  // NOLINTNEXTLINE(google-explicit-constructor)
  Expected(Failure f) : failure_(std::move(f)), ok_(false) {}

  bool ok() const { return ok_; }
  explicit operator bool() const { return ok(); }

  const std::string& error() const { return failure_.message; }
  const std::string& error_code() const { return failure_.code; }

 private:
  Failure failure_;
  bool ok_ = true;
};

}  // namespace kiln
