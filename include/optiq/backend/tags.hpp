#pragma once
// Backend tags (house-style "Policies"): an algorithm is written once and parameterised by where it
// runs. backend::reference is the plain-loop ground truth every other backend is tested against;
// backend::simd picks vector kernels for this CPU (simd/arch.hpp) once per call.
namespace optiq::backend {

struct reference {};
struct simd {};

template <class T>
inline constexpr bool is_backend_v = false;
template <>
inline constexpr bool is_backend_v<reference> = true;
template <>
inline constexpr bool is_backend_v<simd> = true;

template <class T>
concept Backend = is_backend_v<T>;

}  // namespace optiq::backend
