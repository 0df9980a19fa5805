// Errors as values (STYLE.md): Status carries a code and a message that says what was expected
// and where; Result<T> is a value or a Status. Both are cheap to move and never throw on access
// misuse in release builds (access to the wrong alternative is an invariant violation: assert).
#pragma once

#include <cassert>
#include <string>
#include <utility>
#include <variant>

namespace baton {

enum class Code {
  kOk = 0,
  kInvalidArgument,  // the caller's input is wrong (manifest, request body, flag)
  kNotFound,
  kAlreadyExists,
  kConflict,          // a compare-and-swap or revision check failed
  kFailedPrecondition,
  kUnavailable,       // a dependency (store, node, process) cannot be reached right now
  kTimeout,
  kCompacted,         // a watch asked for a revision that history no longer holds
  kIo,
  kInternal,
};

const char* codeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }

  bool isOk() const { return code_ == Code::kOk; }
  explicit operator bool() const { return isOk(); }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "not_found: app \"shop\" does not exist"
  std::string toString() const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

inline Status invalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
inline Status notFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
inline Status conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
inline Status unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
inline Status ioError(std::string m) { return {Code::kIo, std::move(m)}; }
inline Status internalError(std::string m) { return {Code::kInternal, std::move(m)}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) { assert(!std::get<Status>(v_).isOk()); }

  bool isOk() const { return std::holds_alternative<T>(v_); }
  explicit operator bool() const { return isOk(); }

  T& value() & { assert(isOk()); return std::get<T>(v_); }
  const T& value() const& { assert(isOk()); return std::get<T>(v_); }
  T&& value() && { assert(isOk()); return std::get<T>(std::move(v_)); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

  const Status& status() const {
    static const Status kOkStatus;
    return isOk() ? kOkStatus : std::get<Status>(v_);
  }
  T valueOr(T fallback) const { return isOk() ? std::get<T>(v_) : std::move(fallback); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace baton
