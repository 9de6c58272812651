#pragma once
// optiq error hierarchy: every failure is an exception that names what was wrong
// (file, tensor, field, parameter) — no error codes, no abort() in library code.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace optiq {

/// Base of every exception optiq throws.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// Malformed or truncated data in a file or buffer.
class format_error : public error {
public:
    using error::error;
};

/// A dimension, length or shape does not match what the operation needs.
class shape_error : public error {
public:
    using error::error;
};

/// An unsupported parameter: bits, group size, method name, option value.
class config_error : public error {
public:
    using error::error;
};

/// Input values that cannot be processed: non-finite, empty.
class value_error : public error {
public:
    using error::error;
};

namespace detail {

template <class... Args>
[[nodiscard]] std::string concat(Args&&... args) {
    std::ostringstream os;
    (os << ... << std::forward<Args>(args));
    return os.str();
}

/// Throws E with "optiq: " followed by the streamed arguments.
template <class E, class... Args>
[[noreturn]] void fail(Args&&... args) {
    throw E(concat("optiq: ", std::forward<Args>(args)...));
}

}  // namespace detail
}  // namespace optiq
