// A 64-bit content fingerprint, streamed: the same sequence of Add calls gives the same value on
// every platform. It names data (a dataset's id space, its events) so that files made from
// different data are told apart; it is not a cryptographic hash.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "common/rng.h"

namespace shardrec {

class Fingerprint {
 public:
  // A length-prefixed byte string (so "ab","c" and "a","bc" differ).
  void Add(std::string_view bytes) {
    Word(bytes.size());
    uint64_t w = 0;
    size_t k = 0;
    for (char c : bytes) {
      w |= uint64_t{static_cast<unsigned char>(c)} << (8 * k);
      if (++k == 8) {
        Word(w);
        w = 0;
        k = 0;
      }
    }
    Word(w);
  }
  void Add(uint64_t value) { Word(value); }
  template <typename T>
  void AddValues(std::span<const T> values) {
    static_assert(sizeof(T) <= 8);
    Word(values.size());
    for (const T& v : values) Word(static_cast<uint64_t>(static_cast<int64_t>(v)));
  }
  uint64_t value() const { return Mix64(h_ ^ n_); }
  // 16 lowercase hex digits.
  std::string Hex() const {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string s(16, '0');
    uint64_t v = value();
    for (int i = 15; i >= 0; --i, v >>= 4) s[i] = kDigits[v & 15];
    return s;
  }

 private:
  void Word(uint64_t w) {
    h_ = Mix64(h_ ^ w) * 0x9E3779B97F4A7C15ULL + (++n_);
  }
  uint64_t h_ = 0x243F6A8885A308D3ULL;
  uint64_t n_ = 0;
};

}  // namespace shardrec
