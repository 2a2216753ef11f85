#include "common/crc32c.h"

#include <bit>
#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

namespace shardrec {
namespace {

static_assert(std::endian::native == std::endian::little, "the CRC-32C tables fold words in little-endian byte order");

// Eight tables: table[k][b] is the CRC of byte b followed by k zero bytes, so eight bytes are
// folded per step (slicing-by-8) where the CPU has no CRC-32C instruction.
struct Tables {
  uint32_t t[8][256];
};

const Tables& SoftwareTables() {
  static const Tables tables = [] {
    Tables t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = c & 1 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
      t.t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i) {
      for (int k = 1; k < 8; ++k) t.t[k][i] = t.t[0][t.t[k - 1][i] & 0xFF] ^ (t.t[k - 1][i] >> 8);
    }
    return t;
  }();
  return tables;
}

uint32_t ExtendSoftware(uint32_t crc, const unsigned char* p, size_t n) {
  const Tables& t = SoftwareTables();
  while (n >= 8) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + 4, 4);
    lo ^= crc;  // little-endian (asserted above)
    crc = t.t[7][lo & 0xFF] ^ t.t[6][(lo >> 8) & 0xFF] ^ t.t[5][(lo >> 16) & 0xFF] ^ t.t[4][lo >> 24] ^
          t.t[3][hi & 0xFF] ^ t.t[2][(hi >> 8) & 0xFF] ^ t.t[1][(hi >> 16) & 0xFF] ^ t.t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  for (; n > 0; --n, ++p) crc = t.t[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// SSE 4.2's crc32 instruction computes exactly this polynomial, eight bytes at a time.
__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const unsigned char* p, size_t n) {
  for (; n > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0; --n, ++p) crc = _mm_crc32_u8(crc, *p);
  uint64_t c = crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = _mm_crc32_u64(c, word);
  }
  crc = static_cast<uint32_t>(c);
  for (; n > 0; --n, ++p) crc = _mm_crc32_u8(crc, *p);
  return crc;
}

bool HasSse42() {
  static const bool has = __builtin_cpu_supports("sse4.2");
  return has;
}
#endif

}  // namespace

uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }

uint32_t Crc32cExtend(uint32_t value, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint32_t crc = value ^ 0xFFFFFFFFu;
#if defined(__x86_64__)
  crc = HasSse42() ? ExtendSse42(crc, p, n) : ExtendSoftware(crc, p, n);
#else
  crc = ExtendSoftware(crc, p, n);
#endif
  return crc ^ 0xFFFFFFFFu;
}

uint32_t Crc32cExtendPortable(uint32_t value, const void* data, size_t n) {
  return ExtendSoftware(value ^ 0xFFFFFFFFu, static_cast<const unsigned char*>(data), n) ^ 0xFFFFFFFFu;
}

}  // namespace shardrec
