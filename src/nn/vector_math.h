#pragma once
// Float math on GCC/Clang vector-extension values of any width (float __attribute__((
// vector_size(N)))), for kernels compiled as function clones per vector unit. Written as
// scalar loops, clamps and exponent-bit arithmetic did not vectorise (float selects need
// -fno-trapping-math), and std::exp/std::erf are calls per element. Every helper is always
// inlined, so passing vectors by value never meets the baseline clone's ABI (which GCC warns
// about: hence the pragma).
#include <cstdint>
#include <cstring>

#pragma GCC diagnostic ignored "-Wpsabi"

// Function clones for wider vector units (GCC's ifunc multiversioning on x86-64): the
// loader picks the AVX-512 or AVX2 build of a kernel on machines that have them (the
// baseline x86-64 build has SSE2 only).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define J2V_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define J2V_VECTOR_CLONES
#endif
#define J2V_ALWAYS_INLINE __attribute__((always_inline))

namespace j2v::nn::simd {

#define J2V_SIMD_INLINE J2V_ALWAYS_INLINE inline

template <typename V>
J2V_SIMD_INLINE V splat(float v) {
  return V{} + v;
}
template <typename V>
J2V_SIMD_INLINE V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);  // no alignment required
  return v;
}
template <typename V>
J2V_SIMD_INLINE void store(float* p, V v) {
  std::memcpy(p, &v, sizeof v);
}
template <typename V>
J2V_SIMD_INLINE V max(V a, V b) {
  return a > b ? a : b;
}
template <typename V>
J2V_SIMD_INLINE V min(V a, V b) {
  return a < b ? a : b;
}
// The largest lane.
template <typename V>
J2V_SIMD_INLINE float max_lane(V v) {
  float top = v[0];
  for (unsigned i = 1; i < sizeof(V) / sizeof(float); ++i) top = top > v[i] ? top : v[i];
  return top;
}
template <typename V>
J2V_SIMD_INLINE float sum_lanes(V v) {
  float total = 0;
  for (unsigned i = 0; i < sizeof(V) / sizeof(float); ++i) total += v[i];
  return total;
}

// exp(t) for t <= 0: t = n ln 2 + r with |r| <= ln 2 / 2, exp(r) by its Taylor polynomial
// to r^6 (relative error below 2e-7), 2^n built in the exponent bits. Below -87 it returns
// exp(-87) (~2e-38) rather than a denormal or zero.
template <typename V>
J2V_SIMD_INLINE V exp_of_nonpositive(V t) {
  using Ints = decltype(t < t);
  t = max(t, splat<V>(-87.0f));
  // Round to nearest by adding and subtracting 1.5 * 2^23 (exact for |n| < 2^22).
  const V shifter = splat<V>(12582912.0f);
  const V n = (t * splat<V>(1.44269504088896341f) + shifter) - shifter;
  const V r = (t - n * splat<V>(0.693359375f)) - n * splat<V>(-2.12194440e-4f);
  V e = splat<V>(1.0f / 720);
  e = e * r + splat<V>(1.0f / 120);
  e = e * r + splat<V>(1.0f / 24);
  e = e * r + splat<V>(1.0f / 6);
  e = e * r + splat<V>(0.5f);
  e = e * r + splat<V>(1.0f);
  e = e * r + splat<V>(1.0f);
  const Ints exponent = (__builtin_convertvector(n, Ints) + 127) << 23;
  V two_to_n;
  std::memcpy(&two_to_n, &exponent, sizeof two_to_n);
  return e * two_to_n;
}

// erf(x) as x P(x^2) / Q(x^2) on [-4, 4] (beyond it erf is +-1 in float32): the rational
// approximation Eigen and XLA use for float, within 4.2e-7 of erf everywhere (checked
// against double precision over [-6, 6] in float32 arithmetic).
template <typename V>
J2V_SIMD_INLINE V erf_of(V x) {
  x = max(min(x, splat<V>(4.0f)), splat<V>(-4.0f));
  const V x2 = x * x;
  V p = splat<V>(-2.72614225801306e-10f);
  p = p * x2 + splat<V>(2.77068142495902e-08f);
  p = p * x2 + splat<V>(-2.10102402082508e-06f);
  p = p * x2 + splat<V>(-5.69250639462346e-05f);
  p = p * x2 + splat<V>(-7.34990630326855e-04f);
  p = p * x2 + splat<V>(-2.95459980854025e-03f);
  p = p * x2 + splat<V>(-1.60960333262415e-02f);
  V q = splat<V>(-1.45660718464996e-05f);
  q = q * x2 + splat<V>(-2.13374055278905e-04f);
  q = q * x2 + splat<V>(-1.68282697438203e-03f);
  q = q * x2 + splat<V>(-7.37332916720468e-03f);
  q = q * x2 + splat<V>(-1.42647390514189e-02f);
  return x * p / q;
}

#undef J2V_SIMD_INLINE

}  // namespace j2v::nn::simd
