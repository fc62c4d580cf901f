// Tokenizer from a SentencePiece tokenizer.model (a serialized ModelProto).
//
// Read with a hand-written protobuf wire-format reader rather than libprotobuf: we need a dozen
// fields of one message, the bytes are untrusted (every read goes through the bounds-checked
// ByteReader, so a truncated or hostile file is an error, never an overread), and libprotobuf would
// add generated code, a .proto schema and a large dependency to the build for that. Fields used
// (sentencepiece_model.proto; defaults are the proto's):
//   ModelProto     pieces = 1 {piece = 1, score = 2 (float), type = 3 (enum, default NORMAL)}
//                  trainer_spec = 2, normalizer_spec = 3
//   TrainerSpec    model_type = 3 (default UNIGRAM), treat_whitespace_as_suffix = 24,
//                  byte_fallback = 35 (default false), unk_id = 40 (0), bos_id = 41 (1),
//                  eos_id = 42 (2), pad_id = 43 (-1)
//   NormalizerSpec precompiled_charsmap = 2, add_dummy_prefix = 3 (default true),
//                  remove_extra_whitespaces = 4 (default true), escape_whitespaces = 5 (true),
//                  normalization_rule_tsv = 6
#include <cstring>

#include "tokenizer/tokenizer.h"
#include "util/byte_reader.h"

namespace gemma {

namespace {

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t varint = 0;             // wire type 0
  uint32_t fixed32 = 0;            // wire type 5
  std::span<const uint8_t> bytes;  // wire type 2
};

// Reads the next field into f; false at the end or on malformed input (r.ok() tells which).
bool next_field(ByteReader& r, Field& f) {
  if (r.at_end()) return false;
  const uint64_t key = r.read_varint();
  if (!r.ok() || key >> 3 == 0 || key >> 3 > 0x1FFFFFFF) {
    r.fail();
    return false;
  }
  f.number = static_cast<uint32_t>(key >> 3);
  f.wire = static_cast<uint32_t>(key & 7);
  switch (f.wire) {
    case 0: f.varint = r.read_varint(); break;
    case 1: r.skip(8); break;
    case 2: f.bytes = r.take(r.read_varint()); break;
    case 5: f.fixed32 = r.read<uint32_t>(); break;
    default: r.fail();  // groups (3, 4) are not used by this schema; 6, 7 do not exist
  }
  return r.ok();
}

// int32 fields are varints of the value sign-extended to 64 bits.
int32_t as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(v)); }

}  // namespace

Result<Tokenizer> Tokenizer::from_sentencepiece(std::span<const uint8_t> proto, const std::string& src) {
  Spec s;
  int32_t model_type = 1;
  int32_t unk = 0, bos = 1, eos = 2, pad = -1;
  bool suffix_space = false, remove_extra_whitespaces = true, has_charsmap = false, has_rules = false;
  s.byte_fallback = false;
  s.fuse_unk = true;  // sentencepiece gives one <unk> for a run of unknown characters
  s.dummy_prefix = true;
  ByteReader r(proto);
  Field f;
  while (next_field(r, f)) {
    if (f.number == 1 && f.wire == 2) {
      ByteReader pr(f.bytes);
      Field g;
      std::string piece;
      float score = 0;
      TokenKind kind = TokenKind::Normal;
      while (next_field(pr, g)) {
        if (g.number == 1 && g.wire == 2) {
          piece.assign(reinterpret_cast<const char*>(g.bytes.data()), g.bytes.size());
        } else if (g.number == 2 && g.wire == 5) {
          std::memcpy(&score, &g.fixed32, sizeof score);
        } else if (g.number == 3 && g.wire == 0) {
          if (g.varint < 1 || g.varint > 6)
            return corrupt_input("{}: piece #{} has unknown type {}", src, s.pieces.size(), g.varint);
          kind = static_cast<TokenKind>(g.varint);
        }
      }
      if (!pr.ok()) return corrupt_input("{}: malformed piece #{}", src, s.pieces.size());
      if (s.pieces.size() >= (size_t{1} << 24)) return corrupt_input("{}: more than 2^24 pieces", src);
      s.pieces.push_back(std::move(piece));
      s.scores.push_back(score);
      s.kinds.push_back(kind);
    } else if (f.number == 2 && f.wire == 2) {
      ByteReader tr(f.bytes);
      Field g;
      while (next_field(tr, g)) {
        if (g.wire != 0) continue;
        switch (g.number) {
          case 3: model_type = as_int32(g.varint); break;
          case 24: suffix_space = g.varint != 0; break;
          case 35: s.byte_fallback = g.varint != 0; break;
          case 40: unk = as_int32(g.varint); break;
          case 41: bos = as_int32(g.varint); break;
          case 42: eos = as_int32(g.varint); break;
          case 43: pad = as_int32(g.varint); break;
          default: break;
        }
      }
      if (!tr.ok()) return corrupt_input("{}: malformed trainer_spec", src);
    } else if (f.number == 3 && f.wire == 2) {
      ByteReader nr(f.bytes);
      Field g;
      while (next_field(nr, g)) {
        if (g.number == 2 && g.wire == 2) has_charsmap = !g.bytes.empty();
        if (g.number == 3 && g.wire == 0) s.dummy_prefix = g.varint != 0;
        if (g.number == 4 && g.wire == 0) remove_extra_whitespaces = g.varint != 0;
        if (g.number == 5 && g.wire == 0) s.escape_spaces = g.varint != 0;
        if (g.number == 6 && g.wire == 2) has_rules = !g.bytes.empty();
      }
      if (!nr.ok()) return corrupt_input("{}: malformed normalizer_spec", src);
    }
  }
  if (!r.ok()) return corrupt_input("{}: not a SentencePiece model (malformed protobuf at byte {})", src, r.pos());
  if (s.pieces.empty()) return corrupt_input("{}: not a SentencePiece model (no pieces)", src);
  if (model_type != 2) return unsupported("{}: SentencePiece model type {} is not BPE (2)", src, model_type);
  // Normalizations that Gemma's models do not use: refuse them rather than tokenize differently.
  if (has_charsmap || has_rules) return unsupported("{}: Unicode normalization rules are not supported", src);
  if (remove_extra_whitespaces) return unsupported("{}: remove_extra_whitespaces is not supported", src);
  if (suffix_space) return unsupported("{}: treat_whitespace_as_suffix is not supported", src);

  auto to_id = [&](int32_t v) -> std::optional<int32_t> {  // -1 (or out of range): none
    if (v < 0 || static_cast<size_t>(v) >= s.pieces.size()) return std::nullopt;
    return v;
  };
  s.unk = to_id(unk);
  s.bos = to_id(bos);
  s.eos = to_id(eos);
  s.pad = to_id(pad);
  // SentencePiece itself matches only user-defined pieces, in the normalized text; control
  // pieces written literally stay text. HF (and so this engine) also matches them in the raw
  // text, the specials included: "<start_of_turn>" typed by a user is that token.
  for (size_t i = 0; i < s.kinds.size(); ++i) {
    const TokenKind k = s.kinds[i];
    if (k == TokenKind::Control || k == TokenKind::UserDefined || k == TokenKind::Unknown)
      s.raw_added.push_back(static_cast<int32_t>(i));
    if (k == TokenKind::UserDefined) s.normalized_added.push_back(static_cast<int32_t>(i));
  }
  return build(std::move(s), src);
}

}  // namespace gemma
