// Tokenizer loaders: GGUF metadata, Hugging Face tokenizer.json, SentencePiece tokenizer.model.
// All produce a Tokenizer::Spec; build() validates it.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"
#include "util/byte_reader.h"

namespace gemma {

namespace {

// The pieces matched in raw text before BPE: everything that is not a normal or byte piece.
std::vector<int32_t> added_ids(const std::vector<TokenKind>& kinds) {
  std::vector<int32_t> ids;
  for (size_t i = 0; i < kinds.size(); ++i)
    if (kinds[i] == TokenKind::Control || kinds[i] == TokenKind::UserDefined || kinds[i] == TokenKind::Unknown ||
        kinds[i] == TokenKind::Unused)
      ids.push_back(static_cast<int32_t>(i));
  return ids;
}

TokenKind kind_from_int(int64_t v) {
  return v >= 1 && v <= 6 ? static_cast<TokenKind>(v) : TokenKind::Normal;
}

}  // namespace

Result<Tokenizer> Tokenizer::from_gguf(const GgufFile& f) {
  const std::string src = f.path() + " (tokenizer)";
  GE_ASSIGN(auto model, f.get_string("tokenizer.ggml.model"));
  if (model && *model != "llama" && *model != "gemma4")
    return error("{}: tokenizer model '{}' is not SentencePiece ('llama')", src, *model);
  Spec s;
  GE_ASSIGN(s.pieces, f.get_string_array("tokenizer.ggml.tokens"));
  if (f.find("tokenizer.ggml.scores")) {
    GE_ASSIGN(s.scores, f.get_float_array("tokenizer.ggml.scores"));
  }
  if (f.find("tokenizer.ggml.token_type")) {
    GE_ASSIGN(auto types, f.get_int_array("tokenizer.ggml.token_type"));
    for (int64_t t : types) s.kinds.push_back(kind_from_int(t));
  } else {
    s.kinds.assign(s.pieces.size(), TokenKind::Normal);
  }
  if (f.find("tokenizer.ggml.merges")) {
    GE_ASSIGN(auto merges, f.get_string_array("tokenizer.ggml.merges"));
    for (const std::string& m : merges) {
      const size_t sp = m.find(' ');
      if (sp == std::string::npos) return error("{}: malformed merge '{}'", src, m);
      s.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
    }
  }
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
  s.add_dummy_prefix = prefix.value_or(false);
  s.added = added_ids(s.kinds);
  // llama.cpp's converter writes user-defined pieces with '▁' turned into ' ' (the runs of 2..31
  // '▁', ids 138..167 in Gemma 3, are stored as runs of spaces). HF matches the '▁' spelling in
  // raw text, so match it too; the space spelling keeps matching the runs of spaces, which
  // tokenizes them as HF's first-ranked merges do.
  for (int32_t added_id : s.added) {
    const std::string& p = s.pieces[static_cast<size_t>(added_id)];
    if (s.kinds[static_cast<size_t>(added_id)] != TokenKind::UserDefined || p.find(' ') == std::string::npos) continue;
    std::string alias;
    for (char c : p) alias += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
    s.added_aliases.emplace_back(std::move(alias), added_id);
  }
  return build(std::move(s), src);
}

Result<Tokenizer> Tokenizer::from_hf_json(std::string_view text, const std::string& src) {
  using nlohmann::json;
  json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return error("{}: not valid JSON", src);
  if (!j.contains("model") || !j["model"].is_object()) return error("{}: no \"model\" object", src);
  const json& model = j["model"];
  if (model.value("type", std::string()) != "BPE") return error("{}: tokenizer model is not BPE", src);
  if (!model.contains("vocab") || !model["vocab"].is_object()) return error("{}: no BPE vocab", src);
  // Ids may come in any order and added tokens may extend the vocabulary.
  std::vector<std::pair<int64_t, std::string>> entries;
  for (auto& [piece, idv] : model["vocab"].items()) {
    if (!idv.is_number_integer()) return error("{}: vocab id of '{}' is not an integer", src, piece);
    entries.emplace_back(idv.get<int64_t>(), piece);
  }
  std::vector<std::pair<int32_t, bool>> added;  // (id, special)
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const json& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        return error("{}: malformed added_tokens entry", src);
      entries.emplace_back(a["id"].get<int64_t>(), a["content"].get<std::string>());
      added.emplace_back(static_cast<int32_t>(a["id"].get<int64_t>()), a.value("special", false));
    }
  }
  int64_t max_id = -1;
  for (const auto& [id, p] : entries) {
    if (id < 0 || id >= (int64_t{1} << 24)) return error("{}: token id {} out of range", src, id);
    max_id = std::max(max_id, id);
  }
  Spec s;
  s.pieces.resize(static_cast<size_t>(max_id + 1));
  std::vector<bool> seen(s.pieces.size(), false);
  for (const auto& [id, p] : entries) {
    if (seen[static_cast<size_t>(id)] && s.pieces[static_cast<size_t>(id)] != p)
      return error("{}: id {} names two different tokens", src, id);
    s.pieces[static_cast<size_t>(id)] = p;
    seen[static_cast<size_t>(id)] = true;
  }
  s.kinds.assign(s.pieces.size(), TokenKind::Normal);
  for (size_t i = 0; i < s.pieces.size(); ++i) {
    const std::string& p = s.pieces[i];
    if (p.size() == 6 && p.compare(0, 3, "<0x") == 0 && p[5] == '>') s.kinds[i] = TokenKind::Byte;
  }
  for (auto [id, special] : added) {
    s.kinds[static_cast<size_t>(id)] = special ? TokenKind::Control : TokenKind::UserDefined;
    s.added.push_back(id);
  }
  if (model.contains("merges") && model["merges"].is_array()) {
    for (const json& m : model["merges"]) {
      if (m.is_string()) {
        const std::string t = m.get<std::string>();
        const size_t sp = t.find(' ');
        if (sp == std::string::npos) return error("{}: malformed merge '{}'", src, t);
        s.merges.emplace_back(t.substr(0, sp), t.substr(sp + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        s.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        return error("{}: malformed merge entry", src);
      }
    }
  }
  if (s.merges.empty()) return error("{}: BPE model without merges", src);
  if (model.contains("unk_token") && model["unk_token"].is_string()) {
    for (size_t i = 0; i < s.pieces.size(); ++i)
      if (s.pieces[i] == model["unk_token"].get<std::string>()) s.unk = static_cast<int32_t>(i);
  }
  return build(std::move(s), src);
}

// SentencePiece ModelProto, read with a minimal protobuf wire-format reader: we need three fields
// of one message, the input is untrusted, and libprotobuf would add generated code and a schema
// file to the build for that. Fields used (sentencepiece_model.proto):
//   ModelProto.pieces = 1 {piece = 1 (string), score = 2 (float), type = 3 (enum)}
//   ModelProto.trainer_spec = 2 {model_type = 3, unk_id = 40, bos_id = 41, eos_id = 42, pad_id = 43}
//   ModelProto.normalizer_spec = 3 {add_dummy_prefix = 3}
namespace {

struct Field {
  uint32_t number = 0;
  uint32_t wire = 0;
  uint64_t varint = 0;
  uint32_t fixed32 = 0;
  std::span<const uint8_t> bytes;
};

// Reads the next field; false at the end or on malformed input (r.ok() tells which).
bool next_field(ByteReader& r, Field& f) {
  if (r.at_end()) return false;
  const uint64_t key = r.read_varint();
  f.number = static_cast<uint32_t>(key >> 3);
  f.wire = static_cast<uint32_t>(key & 7);
  if (!r.ok() || f.number == 0) {
    r.fail();
    return false;
  }
  switch (f.wire) {
    case 0: f.varint = r.read_varint(); break;
    case 1: r.skip(8); break;
    case 2: f.bytes = r.take(r.read_varint()); break;
    case 5: f.fixed32 = r.read<uint32_t>(); break;
    default: r.fail();
  }
  return r.ok();
}

}  // namespace

Result<Tokenizer> Tokenizer::from_sentencepiece(std::span<const uint8_t> proto, const std::string& src) {
  Spec s;
  int64_t model_type = 1;
  std::optional<int64_t> unk, bos, eos, pad;
  s.add_dummy_prefix = true;  // the proto's default
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
        if (g.number == 1 && g.wire == 2) piece.assign(reinterpret_cast<const char*>(g.bytes.data()), g.bytes.size());
        else if (g.number == 2 && g.wire == 5) std::memcpy(&score, &g.fixed32, 4);
        else if (g.number == 3 && g.wire == 0) kind = kind_from_int(static_cast<int64_t>(g.varint));
      }
      if (!pr.ok()) return error("{}: malformed piece #{}", src, s.pieces.size());
      s.pieces.push_back(std::move(piece));
      s.scores.push_back(score);
      s.kinds.push_back(kind);
    } else if (f.number == 2 && f.wire == 2) {
      ByteReader tr(f.bytes);
      Field g;
      while (next_field(tr, g)) {
        if (g.wire != 0) continue;
        const auto v = static_cast<int64_t>(static_cast<int32_t>(g.varint));
        if (g.number == 3) model_type = v;
        else if (g.number == 40) unk = v;
        else if (g.number == 41) bos = v;
        else if (g.number == 42) eos = v;
        else if (g.number == 43) pad = v;
      }
      if (!tr.ok()) return error("{}: malformed trainer_spec", src);
    } else if (f.number == 3 && f.wire == 2) {
      ByteReader nr(f.bytes);
      Field g;
      while (next_field(nr, g))
        if (g.number == 3 && g.wire == 0) s.add_dummy_prefix = g.varint != 0;
      if (!nr.ok()) return error("{}: malformed normalizer_spec", src);
    }
  }
  if (!r.ok()) return error("{}: not a SentencePiece model (malformed protobuf at byte {})", src, r.pos());
  if (s.pieces.empty()) return error("{}: not a SentencePiece model (no pieces)", src);
  if (model_type != 2) return error("{}: SentencePiece model type {} is not BPE (2)", src, model_type);
  auto to_id = [&](std::optional<int64_t> v) -> std::optional<int32_t> {
    if (!v || *v < 0 || *v >= static_cast<int64_t>(s.pieces.size())) return std::nullopt;
    return static_cast<int32_t>(*v);
  };
  s.unk = to_id(unk);
  s.bos = to_id(bos);
  s.eos = to_id(eos);
  s.pad = to_id(pad);
  s.added = added_ids(s.kinds);
  return build(std::move(s), src);
}

}  // namespace gemma
