// Deterministic, platform-independent random numbers. std::*_distribution is implementation-
// defined, so everything that must be reproducible from a seed (synthetic data, shuffles, table
// initialisation) draws from these instead. Cheap to copy; not thread-safe (one per thread).
#pragma once

#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <utility>

namespace shardrec {

// SplitMix64 finaliser: a good 64-bit mixer.
inline uint64_t Mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Hash of several integers, order-sensitive: streams are keyed as HashKeys({seed, kind, id}).
inline uint64_t HashKeys(std::initializer_list<uint64_t> keys) {
  uint64_t h = 0x6A09E667F3BCC909ULL;
  for (uint64_t k : keys) h = Mix64(h ^ Mix64(k));
  return h;
}

// xoshiro256** seeded through SplitMix64.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    uint64_t x = seed;
    for (auto& s : s_) {
      x += 0x9E3779B97F4A7C15ULL;
      s = Mix64(x);
    }
  }

  uint64_t NextU64() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double Uniform() { return static_cast<double>(NextU64() >> 11) * 0x1.0p-53; }
  // Uniform integer in [0, n); n > 0. Lemire's multiply-shift (bias < 2^-64 * n, negligible).
  // Fisher-Yates over [first, last): element i (from the back) swaps with one of [0, i].
  template <typename It>
  void Shuffle(It first, It last) {
    for (auto i = last - first - 1; i > 0; --i) std::swap(first[i], first[Below(static_cast<uint64_t>(i + 1))]);
  }

  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(NextU64()) * n) >> 64);
  }
  bool Bernoulli(double p) { return Uniform() < p; }
  double Exponential(double mean) { return -mean * std::log1p(-Uniform()); }
  double Normal() {  // Box-Muller, one value per call (keeps the stream simple to reason about)
    double u1 = Uniform();
    double u2 = Uniform();
    return std::sqrt(-2.0 * std::log1p(-u1)) * std::cos(2.0 * M_PI * u2);
  }
  // Gamma(shape, 1) by Marsaglia-Tsang; shape > 0.
  double Gamma(double shape) {
    if (shape < 1.0) return Gamma(shape + 1.0) * std::pow(1.0 - Uniform(), 1.0 / shape);
    const double d = shape - 1.0 / 3.0;
    const double c = 1.0 / std::sqrt(9.0 * d);
    while (true) {
      double x = Normal();
      double v = 1.0 + c * x;
      if (v <= 0) continue;
      v = v * v * v;
      double u = Uniform();
      if (std::log1p(-u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
    }
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace shardrec
