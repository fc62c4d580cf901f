// Errors as values. Everything that reads untrusted input (checkpoint files, tokenizer input,
// requests) returns Result<T>; the CLI turns an Error into one line on stderr and a non-zero exit.
// Every Error carries a kind chosen where it is made, so a server can answer with an HTTP status
// (http_status) without parsing messages:
//   invalid argument    400  bad options, arguments, token ids, input text, prompt longer than the context
//   not found           404  an absent file, tensor, array or metadata key
//   unsupported         415  valid input that this engine does not handle: a dtype, format, version, variant
//   corrupt input       422  malformed, truncated or inconsistent bytes of a file
//   resource exhausted  503  memory or address space that cannot be reserved
//   internal            500  a failed invariant of our own code, or an I/O failure that is nobody's input
// There is no kind-less constructor: build errors with invalid_argument(...), not_found(...) etc., and
// pass an error up with with_context(e, prefix), which keeps its kind. Asserts are kept for invariants
// that cannot fail at all.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <fmt/format.h>  // fmt::format for error messages

namespace gemma {

enum class ErrorKind { kInvalidArgument, kNotFound, kUnsupported, kCorruptInput, kResourceExhausted, kInternal };

// "invalid argument", "not found", ...: for logs and JSON replies (the CLI prints only the message).
constexpr const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return "invalid argument";
    case ErrorKind::kNotFound: return "not found";
    case ErrorKind::kUnsupported: return "unsupported";
    case ErrorKind::kCorruptInput: return "corrupt input";
    case ErrorKind::kResourceExhausted: return "resource exhausted";
    case ErrorKind::kInternal: return "internal";
  }
  return "internal";
}

// The status a server answers with. 415 and 422 because the "request" here is usually a file the
// client named or sent: one we do not handle vs one whose bytes are wrong. 503 because running out
// of memory is the server's state, not the client's fault, and may pass.
constexpr int http_status(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidArgument: return 400;
    case ErrorKind::kNotFound: return 404;
    case ErrorKind::kUnsupported: return 415;
    case ErrorKind::kCorruptInput: return 422;
    case ErrorKind::kResourceExhausted: return 503;
    case ErrorKind::kInternal: return 500;
  }
  return 500;
}

struct Error {
  ErrorKind kind = ErrorKind::kInternal;
  std::string message;
};

// One builder per kind, with fmt-style formatting: return corrupt_input("{}: bad magic", path);
#define GE_ERROR_BUILDER(name, k)                                      \
  template <typename... Args>                                          \
  Error name(fmt::format_string<Args...> format, Args&&... args) {     \
    return Error{k, fmt::format(format, std::forward<Args>(args)...)}; \
  }
GE_ERROR_BUILDER(invalid_argument, ErrorKind::kInvalidArgument)
GE_ERROR_BUILDER(not_found, ErrorKind::kNotFound)
GE_ERROR_BUILDER(unsupported, ErrorKind::kUnsupported)
GE_ERROR_BUILDER(corrupt_input, ErrorKind::kCorruptInput)
GE_ERROR_BUILDER(resource_exhausted, ErrorKind::kResourceExhausted)
GE_ERROR_BUILDER(internal_error, ErrorKind::kInternal)
#undef GE_ERROR_BUILDER

// Passes an error from below up with "prefix: " in front, keeping its kind (a truncated zstd frame
// stays corrupt input however many layers name the file it was in).
inline Error with_context(Error e, std::string_view prefix) {
  e.message = fmt::format("{}: {}", prefix, e.message);
  return e;
}

// Either a value or an Error. Deliberately small: C++20 has no std::expected.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit on purpose
  Result(Error err) : v_(std::move(err)) {}  // NOLINT
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
#define GE_TRY(expr)                                              \
  do {                                                            \
    auto&& ge_try_tmp_ = (expr);                                  \
    if (!ge_try_tmp_.ok()) return std::move(ge_try_tmp_).error(); \
  } while (0)

#define GE_CONCAT_INNER(a, b) a##b
#define GE_CONCAT(a, b) GE_CONCAT_INNER(a, b)

// GE_ASSIGN(lhs, expr): `lhs = value of expr`, or return its Error. lhs may declare: `auto x`.
// It expands to several statements: never use it as the body of an unbraced if/else.
#define GE_ASSIGN(lhs, expr) GE_ASSIGN_IMPL(GE_CONCAT(ge_result_, __LINE__), lhs, expr)
#define GE_ASSIGN_IMPL(tmp, lhs, expr)          \
  auto tmp = (expr);                            \
  if (!tmp.ok()) return std::move(tmp).error(); \
  lhs = std::move(tmp).value()
