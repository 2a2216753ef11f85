// CRC-32C (Castagnoli), as used by manifests (checkpoint, export) and TFRecord framing.
#pragma once

#include <cstddef>
#include <cstdint>

namespace shardrec {

uint32_t Crc32c(const void* data, size_t n);

}  // namespace shardrec
