#pragma once
// Identity preconditioner: Π = I. The baseline every rotation is compared against, and the
// choice for data that is already isotropic.
#include <cstddef>
#include <cstring>
#include <span>

#include "optiq/core/error.hpp"

namespace optiq {

namespace detail {

/// Checks that a preconditioner's input and output both hold dim floats.
inline void check_precondition_io(std::size_t dim, std::size_t in_size, std::size_t out_size, const char* what) {
    if (in_size != dim) fail<shape_error>(what, ": input holds ", in_size, " floats, dimension is ", dim);
    if (out_size != dim) fail<shape_error>(what, ": output holds ", out_size, " floats, dimension is ", dim);
}

/// Constructor check shared by the preconditioners: a 0-dimensional transform is a caller bug.
inline void check_precondition_dim(std::size_t dim, const char* what) {
    if (dim == 0) fail<shape_error>(what, ": dimension is 0");
}

}  // namespace detail

class Identity {
public:
    explicit Identity(std::size_t dim) : dim_(dim) { detail::check_precondition_dim(dim, "Identity"); }

    [[nodiscard]] std::size_t dim() const noexcept { return dim_; }

    /// out = in. in and out may be the same (or overlapping) storage.
    void forward(std::span<const float> in, std::span<float> out) const {
        detail::check_precondition_io(dim_, in.size(), out.size(), "Identity::forward");
        if (in.data() != out.data()) std::memmove(out.data(), in.data(), dim_ * sizeof(float));
    }
    /// out = in (Iᵀ = I).
    void inverse(std::span<const float> in, std::span<float> out) const {
        detail::check_precondition_io(dim_, in.size(), out.size(), "Identity::inverse");
        if (in.data() != out.data()) std::memmove(out.data(), in.data(), dim_ * sizeof(float));
    }

private:
    std::size_t dim_;
};

}  // namespace optiq
