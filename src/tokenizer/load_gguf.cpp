// Tokenizer from GGUF metadata (tokenizer.ggml.*): llama.cpp's copy of the SentencePiece model.
#include <algorithm>

#include "tokenizer/tokenizer.h"

namespace gemma {

Result<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  const std::string src = f.path() + " (tokenizer)";
  GE_ASSIGN(auto model, f.get_string("tokenizer.ggml.model"));
  // "llama" is llama.cpp's name for SentencePiece BPE ranked by score; "gemma4" is the same
  // SentencePiece-style BPE ranked by a merge list. "gpt2" (byte-level BPE) and the others
  // tokenize differently.
  const bool with_merges = model && *model == "gemma4";
  if (model && *model != "llama" && !with_merges)
    return unsupported("{}: tokenizer model '{}' is neither SentencePiece BPE ('llama') nor 'gemma4'", src, *model);
  Spec s;
  s.fuse_unk = true;  // SentencePiece semantics (moot with byte fallback)
  if (with_merges) {
    GE_ASSIGN(auto merges, f.get_string_array("tokenizer.ggml.merges"));
    if (merges.empty()) return corrupt_input("{}: tokenizer model 'gemma4' without merges", src);
    for (const std::string& m : merges) {
      const size_t sp = m.find(' ', 1);  // pieces contain no ' ' ('▁' instead)
      if (sp == std::string::npos) return corrupt_input("{}: malformed merge '{}'", src, utf8_sanitize(m));
      if (!s.add_merge(std::string_view(m).substr(0, sp), std::string_view(m).substr(sp + 1)))
        return corrupt_input("{}: merges too large", src);
    }
  }
  // Checked before the array is materialised (a count is bounded by the file's size, not by sense).
  for (const char* key :
       {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.merges"})
    if (const GgufValue* v = f.find(key); v && v->type == GgufType::ARRAY && v->count > (uint64_t{1} << 24))
      return corrupt_input("{}: {} has {} entries, more than 2^24", src, key, v->count);
  GE_ASSIGN(s.pieces, f.get_string_array("tokenizer.ggml.tokens"));
  if (f.find("tokenizer.ggml.scores")) { GE_ASSIGN(s.scores, f.get_float_array("tokenizer.ggml.scores")); }
  if (f.find("tokenizer.ggml.token_type")) {
    GE_ASSIGN(auto types, f.get_int_array("tokenizer.ggml.token_type"));
    s.kinds.reserve(types.size());
    for (int64_t t : types) s.kinds.push_back(t >= 1 && t <= 6 ? static_cast<TokenKind>(t) : TokenKind::Normal);
  }
  if (!s.kinds.empty() && s.kinds.size() != s.pieces.size())
    return corrupt_input("{}: {} tokens but {} token types", src, s.pieces.size(), s.kinds.size());
  auto id = [&](const char* key) -> Result<std::optional<int32_t>> {
    GE_ASSIGN(auto v, f.get_uint(key));
    if (!v) return std::optional<int32_t>();
    return std::optional<int32_t>(static_cast<int32_t>(std::min<uint64_t>(*v, INT32_MAX)));
  };
  GE_ASSIGN(s.bos, id("tokenizer.ggml.bos_token_id"));
  GE_ASSIGN(s.eos, id("tokenizer.ggml.eos_token_id"));
  GE_ASSIGN(s.pad, id("tokenizer.ggml.padding_token_id"));
  GE_ASSIGN(s.unk, id("tokenizer.ggml.unknown_token_id"));
  GE_ASSIGN(auto prefix, f.get_bool("tokenizer.ggml.add_space_prefix"));
  s.dummy_prefix = prefix.value_or(false);
  for (size_t i = 0; i < s.kinds.size(); ++i) {
    const TokenKind k = s.kinds[i];
    if (k == TokenKind::Control || k == TokenKind::UserDefined || k == TokenKind::Unknown)
      s.raw_added.push_back(static_cast<int32_t>(i));
    if (k != TokenKind::UserDefined) continue;
    s.normalized_added.push_back(static_cast<int32_t>(i));
    // llama.cpp's converter writes user-defined pieces with '▁' turned into ' ' (Gemma 3's runs
    // of 2..31 '▁', ids 138..167, are stored as runs of spaces). SentencePiece pieces never
    // contain ' ', so put the '▁' back: the vocabulary then equals tokenizer.json's.
    std::string& p = s.pieces[i];
    if (p.find(' ') == std::string::npos) continue;
    std::string fixed;
    for (char c : p) fixed += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    p = std::move(fixed);
  }
  return build(std::move(s), src);
}

}  // namespace gemma
