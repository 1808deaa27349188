// Dynamo-compatible token block hashing (DESIGN.md §1). xxHash is inlined: block hashing sits on the
// request path, once per full block.
#include "kvbm/core/hashing.h"

#include <bit>
#include <cstring>
#include <string>
#include <vector>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "kvbm/core/little_endian.h"

namespace kvbm {
namespace {

// The 16-byte chain input hashed from a stack buffer: XXH3 inlines to its 9-16 byte path.
std::uint64_t chain_hash(std::uint64_t parent, std::uint64_t block, std::uint64_t seed) {
  unsigned char input[16];
  store_le<std::uint64_t>(input, parent);
  store_le<std::uint64_t>(input + 8, block);
  return XXH3_64bits_withSeed(input, sizeof(input), seed);
}

// The per-block loop of hash_blocks on a little-endian host, where the tokens already are the hashed
// bytes. kBlockBytes is the block size when fixed at compile time (0: `block_bytes`), which folds XXH3's
// length dispatch away for the common page sizes.
//
// Blocks over XXH3_MIDSIZE_MAX bytes with a non-zero seed take XXH3's long path, which with
// XXH3_64bits_withSeed derives a 192-byte secret from the seed on every call. The secret is derived once
// here instead: XXH3_64bits_withSecretandSeed with a secret from XXH3_generateSecret_fromSeed is
// documented to give exactly the XXH3_64bits_withSeed result.
template <std::size_t kBlockBytes>
void hash_blocks_le(const unsigned char* in, std::size_t num_blocks, std::size_t block_bytes, std::uint64_t seed,
                    std::optional<SequenceHash> parent, BlockHash* block_out, SequenceHash* seq_out,
                    unsigned char* copy_out) {
  const std::size_t bytes = kBlockBytes != 0 ? kBlockBytes : block_bytes;
  alignas(64) unsigned char secret[XXH3_SECRET_DEFAULT_SIZE];
  const bool derived_secret = bytes > XXH3_MIDSIZE_MAX && seed != 0;
  if (derived_secret) XXH3_generateSecret_fromSeed(secret, seed);
  // The copy of a block rides along with its hash while its bytes are in registers and L1.
  const auto block_hash = [&](const unsigned char* block) {
    if (copy_out != nullptr) std::memcpy(copy_out + (block - in), block, bytes);
    return derived_secret ? XXH3_64bits_withSecretandSeed(block, bytes, secret, sizeof(secret), seed)
                          : XXH3_64bits_withSeed(block, bytes, seed);
  };

  std::size_t i = 0;
  std::uint64_t prev = 0;
  if (parent) {
    prev = parent->value();
  } else if (num_blocks > 0) {
    prev = block_hash(in);
    block_out[0] = BlockHash{prev};
    seq_out[0] = SequenceHash{prev};
    i = 1;
  }
  for (; i < num_blocks; ++i) {
    const std::uint64_t block = block_hash(in + i * bytes);
    prev = chain_hash(prev, block, seed);
    block_out[i] = BlockHash{block};
    seq_out[i] = SequenceHash{prev};
  }
}

}  // namespace

std::uint64_t xxh3_64(const void* data, std::size_t len, std::uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
}

BlockHash compute_block_hash(std::span<const std::uint32_t> tokens, SaltHash salt) {
  if constexpr (std::endian::native == std::endian::little) {
    return BlockHash{xxh3_64(tokens.data(), tokens.size_bytes(), salt.value())};
  } else {
    // The hash is defined over little-endian u32 bytes; a big-endian host swaps into a buffer.
    std::vector<unsigned char> bytes(tokens.size_bytes());
    for (std::size_t i = 0; i < tokens.size(); ++i) {
      for (int b = 0; b < 4; ++b) bytes[4 * i + b] = static_cast<unsigned char>(tokens[i] >> (8 * b));
    }
    return BlockHash{xxh3_64(bytes.data(), bytes.size(), salt.value())};
  }
}

SequenceHash compute_sequence_hash(SequenceHash parent, BlockHash block, SaltHash salt) {
  return SequenceHash{chain_hash(parent.value(), block.value(), salt.value())};
}

void hash_blocks(std::span<const std::uint32_t> tokens, std::uint32_t page_size, SaltHash salt,
                 std::optional<SequenceHash> parent, BlockHash* block_out, SequenceHash* seq_out,
                 std::uint32_t* tokens_out) {
  const std::size_t num_blocks = tokens.size() / page_size;
  if constexpr (std::endian::native == std::endian::little) {
    const auto* in = reinterpret_cast<const unsigned char*>(tokens.data());
    auto* copy_out = reinterpret_cast<unsigned char*>(tokens_out);
    const std::size_t block_bytes = std::size_t{page_size} * sizeof(std::uint32_t);
    switch (page_size) {
      case 16:
        return hash_blocks_le<16 * sizeof(std::uint32_t)>(in, num_blocks, block_bytes, salt.value(), parent, block_out,
                                                          seq_out, copy_out);
      case 32:
        return hash_blocks_le<32 * sizeof(std::uint32_t)>(in, num_blocks, block_bytes, salt.value(), parent, block_out,
                                                          seq_out, copy_out);
      default:
        return hash_blocks_le<0>(in, num_blocks, block_bytes, salt.value(), parent, block_out, seq_out, copy_out);
    }
  } else {
    for (std::size_t i = 0; i < num_blocks; ++i) {
      block_out[i] = compute_block_hash(tokens.subspan(i * page_size, page_size), salt);
      seq_out[i] = chain_sequence_hash(parent, block_out[i], salt);
      parent = seq_out[i];
    }
    if (tokens_out != nullptr) {
      std::memcpy(tokens_out, tokens.data(), num_blocks * page_size * sizeof(std::uint32_t));
    }
  }
}

SaltHash compute_salt_hash(std::string_view salt) {
  if (salt.empty()) return SaltHash{0};
  return SaltHash{xxh3_64(salt.data(), salt.size(), 0)};
}

SaltHash derive_salt_hash(std::string_view salt, std::string_view lora_name) {
  if (lora_name.empty()) return compute_salt_hash(salt);
  std::string bytes;
  bytes.reserve(salt.size() + 6 + lora_name.size());
  bytes.append(salt);
  bytes.push_back('\0');
  bytes.append("lora:");
  bytes.append(lora_name);
  return SaltHash{xxh3_64(bytes.data(), bytes.size(), 0)};
}

}  // namespace kvbm
