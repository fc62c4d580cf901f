// The Gemma tokenizer: SentencePiece-style BPE with byte fallback, as the Hugging Face
// `tokenizers` pipeline of Gemma runs it (architecture.md §5):
//   1. added tokens (special and user-defined: <bos>, <start_of_turn>, runs of \n, ...) are cut
//      out of the raw text first, leftmost-longest;
//   2. every other stretch has ' ' replaced by '▁' and is split into characters; characters not
//      in the vocabulary become their UTF-8 bytes as <0xNN> tokens;
//   3. adjacent symbols merge, best-ranked pair first (leftmost on ties), until no pair merges.
// The merge rank comes from tokenizer.json's merge list, or — for GGUF and tokenizer.model, which
// carry no merges — from the score of the merged piece (SentencePiece's rule).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "formats/gguf.h"
#include "tokenizer/utf8.h"
#include "util/result.h"

namespace gemma {

// SentencePiece piece types (same numbering as the proto and GGUF's token_type).
enum class TokenKind : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Tokenizer {
 public:
  static Result<Tokenizer> from_gguf(const GgufFile& f);
  static Result<Tokenizer> from_hf_json(std::string_view json, const std::string& source_name);
  static Result<Tokenizer> from_sentencepiece(std::span<const uint8_t> model_proto, const std::string& source_name);
  // tokenizer.json (optionally .zst-compressed) or a SentencePiece tokenizer.model, by name.
  static Result<Tokenizer> from_file(const std::string& path);

  // Errors (naming the byte offset) on invalid UTF-8.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_bos) const;
  // As HF decode(skip_special_tokens=False): specials print as their text; a run of byte tokens
  // that is not valid UTF-8 prints one U+FFFD per byte. Out-of-range ids are skipped.
  std::string decode(std::span<const int32_t> ids) const;
  // The raw bytes one token contributes, for streaming through Utf8StreamDecoder.
  std::string token_bytes(int32_t id) const;

  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> find(std::string_view piece) const;
  const std::string& piece(int32_t id) const { return pieces_[static_cast<size_t>(id)]; }
  TokenKind kind(int32_t id) const { return kinds_[static_cast<size_t>(id)]; }
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }
  int32_t unk_id() const { return unk_; }
  // SentencePiece-style scores for writing the vocabulary elsewhere (GGUF, tokenizer.model): the
  // source's scores, or for merge-ranked sources -(rank of the first merge that forms the piece),
  // which ranks merges the same way.
  const std::vector<float>& scores() const { return scores_; }
  std::optional<int32_t> start_of_turn_id() const { return find("<start_of_turn>"); }
  std::optional<int32_t> end_of_turn_id() const { return find("<end_of_turn>"); }

  // Everything a loader extracts from a tokenizer file; build() validates it.
  struct Spec {
    std::vector<std::string> pieces;
    std::vector<TokenKind> kinds;
    std::vector<float> scores;                               // used when merges is empty
    std::vector<std::pair<std::string, std::string>> merges;  // in rank order; empty: rank by score
    std::vector<int32_t> added;                               // ids matched in raw text
    std::vector<std::pair<std::string, int32_t>> added_aliases;  // extra spellings matched in raw text
    std::optional<int32_t> bos, eos, pad, unk;
    bool add_dummy_prefix = false;
  };
  static Result<Tokenizer> build(Spec spec, const std::string& source_name);

 private:
  struct TrieNode {
    int32_t token = -1;                  // token ending here, or -1
    std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
  };
  // Longest added token starting at text[pos]: (length in bytes, id), or length 0.
  std::pair<size_t, int32_t> match_added(std::string_view text, size_t pos) const;
  void encode_segment(std::string_view raw, std::vector<int32_t>& out) const;
  void bpe(std::string_view normalized, std::vector<int32_t>& out) const;
  // Rank of merging (a, b) and the id it yields; nullopt if the pair does not merge.
  std::optional<std::pair<float, int32_t>> merge_of(int32_t a, int32_t b) const;

  std::vector<std::string> pieces_;
  std::vector<TokenKind> kinds_;
  std::vector<float> scores_;
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<uint64_t, std::pair<float, int32_t>> merges_;  // (a << 32 | b) -> (rank, merged)
  bool rank_by_score_ = true;
  bool add_dummy_prefix_ = false;
  std::vector<TrieNode> trie_;
  std::array<bool, 256> may_start_added_{};
  std::array<int32_t, 256> byte_ids_{};
  int32_t bos_ = -1, eos_ = -1, pad_ = -1, unk_ = -1;
};

}  // namespace gemma
