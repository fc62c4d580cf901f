// The Gemma tokenizer: BPE with byte fallback, as Hugging Face's `tokenizers` runs Gemma's
// tokenizer.json (docs/spec/architecture.md §5, tests/fixtures/tokenizer golden cases):
//   1. added tokens (<bos>, <start_of_turn>, <unusedN>, runs of \n, \t and ▁, ...) are cut out of
//      the raw text first, leftmost-longest; a special token written literally IS that token;
//   2. every other stretch has ' ' replaced by '▁' (nothing else: no Unicode normalization, no
//      dummy prefix) and is split into characters; a character outside the vocabulary becomes one
//      <0xNN> token per UTF-8 byte;
//   3. adjacent symbols merge, lowest rank first (leftmost on ties), until no pair merges.
// tokenizer.json gives the ranks as its merge list. GGUF and tokenizer.model carry no merges: a
// pair merges if its concatenation is a piece, higher score first (SentencePiece's rule); both
// become one pair table at load time, so encoding is the same code for every source.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "formats/gguf.h"
#include "tokenizer/tables.h"
#include "tokenizer/utf8.h"
#include "util/result.h"

namespace gemma {

// SentencePiece piece types, numbered as in sentencepiece_model.proto and GGUF's token_type.
enum class TokenKind : uint8_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

class Tokenizer {
 public:
  // tokenizer.ggml.* metadata: llama.cpp's SentencePiece vocabulary with scores ("llama"), or with a
  // merge list ("gemma4").
  static Result<Tokenizer> from_gguf(const GgufFile& f);
  // The text of a Hugging Face tokenizer.json with a BPE model.
  static Result<Tokenizer> from_hf_json(std::string_view json, const std::string& source_name);
  // The bytes of a SentencePiece tokenizer.model (a serialized BPE ModelProto).
  static Result<Tokenizer> from_sentencepiece(std::span<const uint8_t> model_proto, const std::string& source_name);
  // tokenizer.json or tokenizer.model, optionally .zst-compressed (JSON is recognised by the name
  // or by a leading '{'), or the vocabulary of a .gguf file.
  static Result<Tokenizer> from_file(const std::string& path);

  // Errors (naming the byte offset) on invalid UTF-8. add_bos prepends <bos> and nothing else.
  Result<std::vector<int32_t>> encode(std::string_view text, bool add_bos) const;
  // As HF decode(skip_special_tokens=False): specials print as their text, '▁' as a space; a run
  // of byte tokens that is not valid UTF-8 prints one U+FFFD per byte token. Out-of-range ids are
  // skipped.
  std::string decode(std::span<const int32_t> ids) const;
  // The raw bytes one token contributes ('▁' -> ' ', <0xNN> -> that byte, specials -> their
  // text), for streaming through Utf8StreamDecoder. Empty for an out-of-range id.
  std::string token_bytes(int32_t id) const;

  // SentencePiece-style scores, for writing the vocabulary elsewhere (GGUF, tokenizer.model): the
  // source's scores, or for merge-ranked sources -(rank of the first merge that forms the piece),
  // which ranks SentencePiece's merges the same way; -1000 for control and user-defined pieces, as
  // llama.cpp's converter writes them.
  const std::vector<float>& scores() const { return scores_; }
  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> find(std::string_view piece) const;
  std::string_view piece(int32_t id) const;  // "" for an out-of-range id
  TokenKind kind(int32_t id) const;          // Unused for an out-of-range id
  int32_t bos_id() const { return bos_; }
  int32_t eos_id() const { return eos_; }
  int32_t pad_id() const { return pad_; }  // -1 if the vocabulary has none
  int32_t unk_id() const { return unk_; }  // -1 if the vocabulary has none
  std::optional<int32_t> start_of_turn_id() const { return start_of_turn_; }
  std::optional<int32_t> end_of_turn_id() const { return end_of_turn_; }

 private:
  // Everything a loader extracts from a tokenizer file; build() validates it.
  struct Spec {
    std::vector<std::string> pieces;
    std::vector<TokenKind> kinds;
    // Merge order. HF: the merge list, packed as 2 strings per merge (ends = end offsets into
    // merge_bytes). SentencePiece/GGUF (merge_ends empty): the merged piece's score.
    std::string merge_bytes;
    std::vector<uint32_t> merge_ends;
    bool add_merge(std::string_view a, std::string_view b) {  // false past 4 GiB of merge text
      if (merge_bytes.size() + a.size() + b.size() > UINT32_MAX) return false;
      merge_bytes.append(a);
      merge_ends.push_back(static_cast<uint32_t>(merge_bytes.size()));
      merge_bytes.append(b);
      merge_ends.push_back(static_cast<uint32_t>(merge_bytes.size()));
      return true;
    }
    std::vector<float> scores;
    std::vector<int32_t> raw_added;         // ids matched in the raw text, before normalization
    std::vector<int32_t> normalized_added;  // ids matched in the normalized text
    std::optional<int32_t> bos, eos, pad, unk;
    bool dummy_prefix = false;   // SentencePiece add_dummy_prefix: ' ' before the whole text
    std::string segment_prefix;  // HF Prepend normalizer: before every stretch between added tokens
    bool escape_spaces = true;   // ' ' -> '▁'
    bool byte_fallback = true;
    bool fuse_unk = false;       // HF: consecutive unknown characters give one <unk>
    bool ignore_merges = false;  // HF: a stretch that is a whole piece skips BPE
  };
  static Result<Tokenizer> build(Spec spec, const std::string& source_name);

  // Added tokens, as a byte trie searched leftmost-longest.
  struct Trie {
    struct Node {
      int32_t token = -1;                             // token ending here, or -1
      std::vector<std::pair<uint8_t, int32_t>> next;  // sorted by byte
    };
    std::vector<Node> nodes;
    std::array<bool, 256> may_start{};
    void add(std::string_view text, int32_t id);
    // Longest token starting at text[pos]: (length in bytes, id), or length 0.
    std::pair<size_t, int32_t> match(std::string_view text, size_t pos) const;
    bool empty() const { return nodes.size() <= 1; }
  };

  struct Sym {  // a BPE symbol in its stretch's linked list
    int32_t id, prev, next;
  };
  struct Cand {  // a pair that merges: (rank, left position) orders the heap
    int32_t rank, left, left_id, right_id, merged;
  };
  Status encode_segment(std::string_view raw, std::vector<int32_t>& out) const;
  Status bpe(std::string_view normalized, std::vector<int32_t>& out) const;
  void merge_chunk(std::vector<Sym>& syms, int32_t begin, int32_t end, std::vector<Cand>& heap,
                   std::vector<int32_t>& out) const;
  int32_t char_id(std::string_view ch) const;

  // SentencePiece (score-ranked) vocabularies: the merge of a and b, if their texts joined are a
  // piece that merges; buf is scratch space.
  tok::PairMap::Merge score_merge(int32_t a, int32_t b, std::string& buf) const;

  tok::PieceTable pieces_;
  std::vector<TokenKind> kinds_;
  std::vector<float> scores_;        // see scores()
  std::vector<int16_t> byte_value_;  // per id: the byte of a <0xNN> token, or -1
  tok::PieceIndex index_;
  // How pairs merge. A merge list (tokenizer.json, GGUF 'gemma4'): merges_, keyed by the pair's
  // ids. Ranked by score (SentencePiece, GGUF 'llama'): two symbols merge into the piece their texts
  // make together, with merge_rank_[piece] (-1: never a merge result), found through index_ when
  // needed rather than tabulated: the table of every split of every piece took 17 MB.
  bool rank_by_score_ = false;
  tok::PairMap merges_;
  std::vector<int32_t> merge_rank_;
  tok::CodePairSet adjacent_;             // code point pairs adjacent in some piece: BPE may merge across them
  std::array<int32_t, 128> ascii_ids_{};  // single-ASCII-character pieces (or -1), the common case
  std::array<int32_t, 256> byte_ids_{};   // <0xNN> ids, or -1
  Trie raw_added_, normalized_added_;
  bool dummy_prefix_ = false;
  std::string segment_prefix_;
  bool escape_spaces_ = true;
  bool byte_fallback_ = true;
  bool fuse_unk_ = false;
  bool ignore_merges_ = false;
  int32_t bos_ = -1, eos_ = -1, pad_ = -1, unk_ = -1;
  std::optional<int32_t> start_of_turn_, end_of_turn_;
};

}  // namespace gemma
