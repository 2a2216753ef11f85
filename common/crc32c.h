// CRC-32C (Castagnoli), as used by manifests (checkpoint, export) and TFRecord framing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shardrec {

uint32_t Crc32c(const void* data, size_t n);
// The CRC-32C of (the bytes whose CRC is `crc`) followed by data[0, n): Crc32c(a + b) ==
// Crc32cExtend(Crc32c(a), b), and Crc32cExtend(0, x) == Crc32c(x).
// With the CPU's CRC-32C instruction where it has one (x86-64 SSE 4.2), else slicing-by-8 tables.
uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
// Crc32cExtend by the tables alone, whatever the CPU (the same values; for tests and benchmarks).
uint32_t Crc32cExtendPortable(uint32_t crc, const void* data, size_t n);

}  // namespace shardrec
