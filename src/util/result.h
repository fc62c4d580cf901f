// Errors as values. Everything that reads untrusted input (checkpoint files, tokenizer input,
// requests) returns Result<T>; the CLI turns an Error into one line on stderr and a non-zero exit,
// a server would turn it into a 4xx. Asserts are kept for invariants of our own code.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include <fmt/format.h>  // fmt::format for error messages

namespace gemma {

struct Error {
  std::string message;
};

// Builds an Error with fmt-style formatting: return error("{}: bad magic", path);
template <typename... Args>
Error error(fmt::format_string<Args...> format, Args&&... args) {
  return Error{fmt::format(format, std::forward<Args>(args)...)};
}

// Either a value or an Error. Deliberately small: C++20 has no std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}          // NOLINT: implicit on purpose
  Result(Error err) : v_(std::move(err)) {}          // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  const Error& error() const& { return std::get<1>(v_); }
  Error&& error() && { return std::get<1>(std::move(v_)); }

 private:
  std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Error err) : err_(std::move(err)), ok_(false) {}  // NOLINT
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const Error& error() const& { return err_; }
  Error&& error() && { return std::move(err_); }

 private:
  Error err_;
  bool ok_ = true;
};

inline Status ok_status() { return Status(); }

}  // namespace gemma

// GE_TRY(expr): evaluate a Status/Result, return its Error from the enclosing function on failure.
#define GE_TRY(expr)                                   \
  do {                                                 \
    auto&& ge_try_tmp_ = (expr);                       \
    if (!ge_try_tmp_.ok()) return std::move(ge_try_tmp_).error(); \
  } while (0)

#define GE_CONCAT_INNER(a, b) a##b
#define GE_CONCAT(a, b) GE_CONCAT_INNER(a, b)

// GE_ASSIGN(lhs, expr): `lhs = value of expr`, or return its Error. lhs may declare: `auto x`.
// It expands to several statements: never use it as the body of an unbraced if/else.
#define GE_ASSIGN(lhs, expr) GE_ASSIGN_IMPL(GE_CONCAT(ge_result_, __LINE__), lhs, expr)
#define GE_ASSIGN_IMPL(tmp, lhs, expr)            \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return std::move(tmp).error();   \
  lhs = std::move(tmp).value()
