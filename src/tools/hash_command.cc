// `kvbm hash`: prints the block and sequence hash of every full block of a token list, so that another
// implementation (Dynamo, vLLM, a Python check) can be compared with kvbm bit for bit.
//
// Every argument is taken as a string and parsed here, so that any bad input gives one message naming the
// field and exit code 2, rather than a parser-specific code.
#include <charconv>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "kvbm/core/hashing.h"
#include "kvbm/core/token_block_sequence.h"
#include "tools/commands.h"

namespace kvbm::tools {
namespace {

struct HashArgs {
  std::string block_size;
  std::string salt;
  std::string salt_hash;
  std::vector<std::string> tokens;
};

// Parses a whole decimal string into T; nullopt when it is not one or does not fit.
template <typename T>
std::optional<T> parse_decimal(const std::string& text) {
  T value{};
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

int run_hash(const HashArgs& args, bool has_block_size, bool has_salt, bool has_salt_hash) {
  if (!has_block_size) {
    std::cerr << "kvbm hash: --block-size is required (an integer in [1, 4294967295])\n";
    return 2;
  }
  const std::optional<std::uint32_t> block_size = parse_decimal<std::uint32_t>(args.block_size);
  if (!block_size || *block_size == 0) {
    std::cerr << "kvbm hash: --block-size must be an integer in [1, 4294967295], got \"" << args.block_size << "\"\n";
    return 2;
  }
  if (has_salt && has_salt_hash) {
    std::cerr << "kvbm hash: --salt and --salt-hash are mutually exclusive; give at most one\n";
    return 2;
  }
  SaltHash salt{0};
  if (has_salt) salt = compute_salt_hash(args.salt);
  if (has_salt_hash) {
    const std::optional<std::uint64_t> value = parse_decimal<std::uint64_t>(args.salt_hash);
    if (!value) {
      std::cerr << "kvbm hash: --salt-hash must be a decimal integer in [0, 18446744073709551615], got \""
                << args.salt_hash << "\"\n";
      return 2;
    }
    salt = SaltHash{*value};
  }
  std::vector<std::uint32_t> tokens;
  tokens.reserve(args.tokens.size());
  for (std::size_t i = 0; i < args.tokens.size(); ++i) {
    const std::optional<std::uint32_t> token = parse_decimal<std::uint32_t>(args.tokens[i]);
    if (!token) {
      std::cerr << "kvbm hash: TOKEN " << i << " must be an integer in [0, 4294967295], got \"" << args.tokens[i]
                << "\"\n";
      return 2;
    }
    tokens.push_back(*token);
  }
  absl::StatusOr<TokenBlockSequence> sequence = TokenBlockSequence::create(*block_size, salt, tokens);
  if (!sequence.ok()) {
    std::cerr << "kvbm hash: " << sequence.status().message() << "\n";
    return 2;
  }
  for (std::size_t i = 0; i < sequence->num_full_blocks(); ++i) {
    std::cout << sequence->block_hashes()[i].value() << ' ' << sequence->sequence_hashes()[i].value() << '\n';
  }
  std::cout.flush();
  return std::cout ? 0 : 1;
}

}  // namespace

void add_hash_command(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand(
      "hash",
      "Print '<block_hash> <sequence_hash>' (decimal) for each full block of TOKEN...; a partial tail "
      "prints nothing");
  auto args = std::make_shared<HashArgs>();
  CLI::Option* block_size = cmd->add_option("--block-size", args->block_size, "Tokens per block (required, > 0)");
  CLI::Option* salt = cmd->add_option("--salt", args->salt, "Salt string; hashed with xxh3_64, seed 0");
  CLI::Option* salt_hash =
      cmd->add_option("--salt-hash", args->salt_hash, "Salt hash as a decimal u64 (instead of --salt)");
  cmd->add_option("tokens", args->tokens, "Token ids (u32)");
  cmd->callback([args, block_size, salt, salt_hash, exit_code] {
    *exit_code = run_hash(*args, block_size->count() > 0, salt->count() > 0, salt_hash->count() > 0);
  });
}

}  // namespace kvbm::tools
