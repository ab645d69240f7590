#pragma once
// CRC-32C (Castagnoli), the checksum TFRecord framing uses for TensorBoard event files.
#include <cstddef>
#include <cstdint>

namespace j2v::engine {

// Pass a previous result as `crc` to continue a checksum over data fed in pieces.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

// TFRecord stores checksums masked, because a CRC over data that itself holds CRCs is weak.
uint32_t masked_crc32c(const void* data, size_t n);

}  // namespace j2v::engine
