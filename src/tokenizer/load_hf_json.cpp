// Tokenizer from a Hugging Face tokenizer.json (BPE model).
//
// Gemma 3's file is 34 MB: 262,144 vocab entries and 514,906 merges. Building a full nlohmann DOM
// of it takes ~1.2 s and a few hundred MB (a map node per vocab entry, an array per merge), so it is
// read with nlohmann's SAX interface instead: model.vocab and model.merges stream straight into
// flat arrays, and only the small rest of the document (added_tokens, normalizer, ...) becomes a
// DOM. simdjson would parse ~0.2 s faster but is a new dependency for a once-per-process cost.
#include <nlohmann/json.hpp>

#include "tokenizer/tokenizer.h"

namespace gemma {

namespace {

using nlohmann::json;

class TokenizerJsonSax : public nlohmann::json_sax<json> {
 public:
  std::vector<std::pair<std::string, int64_t>> vocab;
  std::string merge_bytes;
  std::vector<uint32_t> merge_ends;
  json rest;          // the document without model.vocab and model.merges
  std::string error;  // set when parsing stopped

  bool null() override { return value(json()); }
  bool boolean(bool v) override { return value(json(v)); }
  bool number_integer(number_integer_t v) override { return integer(v, json(v)); }
  bool number_unsigned(number_unsigned_t v) override {
    return integer(v > static_cast<uint64_t>(INT64_MAX) ? -1 : static_cast<int64_t>(v), json(v));
  }
  bool number_float(number_float_t v, const string_t&) override { return not_in_vocab() && value(json(v)); }
  bool binary(binary_t&) override { return fail("binary values are not JSON"); }
  bool string(string_t& v) override {
    if (mode_ == Mode::Merges) {  // the older "a b" form; HF wants exactly one space
      const size_t sp = v.find(' ');
      if (sp == std::string::npos || v.find(' ', sp + 1) != std::string::npos)
        return fail("malformed merge '" + v + "'");
      return add_merge_part(std::string_view(v).substr(0, sp)) && add_merge_part(std::string_view(v).substr(sp + 1));
    }
    if (mode_ == Mode::MergePair) {
      if (++pair_parts_ > 2) return fail("a merge has more than two parts");
      return add_merge_part(v);
    }
    return not_in_vocab() && value(json(std::move(v)));
  }
  bool key(string_t& k) override {
    key_ = std::move(k);
    return true;
  }
  bool start_object(std::size_t) override {
    if (mode_ == Mode::Dom && in_model() && key_ == "vocab") {
      mode_ = Mode::Vocab;
      return true;
    }
    if (mode_ != Mode::Dom) return fail(mode_ == Mode::Vocab ? "a vocab id is not an integer" : "malformed merges");
    return open(json::object());
  }
  bool end_object() override {
    if (mode_ == Mode::Vocab) {
      mode_ = Mode::Dom;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    if (mode_ == Mode::Dom && in_model() && key_ == "merges") {
      mode_ = Mode::Merges;
      return true;
    }
    if (mode_ == Mode::Merges) {
      mode_ = Mode::MergePair;
      pair_parts_ = 0;
      return true;
    }
    if (mode_ != Mode::Dom) return fail(mode_ == Mode::Vocab ? "a vocab id is not an integer" : "malformed merges");
    return open(json::array());
  }
  bool end_array() override {
    if (mode_ == Mode::MergePair) {
      if (pair_parts_ != 2) return fail("a merge does not have two parts");
      mode_ = Mode::Merges;
      return true;
    }
    if (mode_ == Mode::Merges) {
      mode_ = Mode::Dom;
      return true;
    }
    stack_.pop_back();
    return true;
  }
  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& e) override {
    // nlohmann's message quotes the input, which may not be UTF-8.
    if (error.empty())
      error = "not valid JSON near byte " + std::to_string(position) + " (" + utf8_sanitize(e.what()) + ")";
    return false;
  }

 private:
  enum class Mode { Dom, Vocab, Merges, MergePair };
  static constexpr size_t kMaxDepth = 64;  // tokenizer.json nests ~6 deep

  bool fail(std::string message) {
    if (error.empty()) error = std::move(message);
    return false;
  }
  // Directly inside the top-level "model" object.
  bool in_model() const { return stack_.size() == 2 && stack_[1].second == "model" && stack_[1].first->is_object(); }
  bool not_in_vocab() {
    return mode_ == Mode::Dom || fail(mode_ == Mode::Vocab ? "a vocab id is not an integer" : "malformed merges");
  }
  bool integer(int64_t v, json as_json) {
    if (mode_ == Mode::Vocab) {
      // Stop an endless vocabulary as it streams in, not after it is all in memory.
      if (vocab.size() >= (size_t{1} << 24)) return fail("vocab has more than 2^24 entries");
      vocab.emplace_back(std::move(key_), v);
      return true;
    }
    return not_in_vocab() && value(std::move(as_json));
  }
  bool add_merge_part(std::string_view part) {
    if (merge_bytes.size() + part.size() > UINT32_MAX) return fail("merges too large");
    merge_bytes.append(part);
    merge_ends.push_back(static_cast<uint32_t>(merge_bytes.size()));
    return true;
  }
  // Adds a scalar to the DOM; returns true (continue parsing).
  bool value(json v) {
    if (stack_.empty()) {
      rest = std::move(v);
      return true;
    }
    json& top = *stack_.back().first;
    if (top.is_array()) top.push_back(std::move(v));
    else top[key_] = std::move(v);
    return true;
  }
  bool open(json container) {
    if (stack_.size() >= kMaxDepth) return fail("JSON nested too deeply");
    json* slot;
    std::string name;
    if (stack_.empty()) {
      rest = std::move(container);
      slot = &rest;
    } else if (json& top = *stack_.back().first; top.is_array()) {
      top.push_back(std::move(container));
      slot = &top.back();
    } else {
      slot = &(top[key_] = std::move(container));
      name = key_;
    }
    stack_.emplace_back(slot, std::move(name));
    return true;
  }

  Mode mode_ = Mode::Dom;
  int pair_parts_ = 0;
  std::string key_;
  std::vector<std::pair<json*, std::string>> stack_;  // open DOM containers and their keys
};

// Member access that never throws (nlohmann throws on type mismatches).
const json* member(const json& o, const char* name) {
  if (!o.is_object()) return nullptr;
  auto it = o.find(name);
  return it == o.end() || it->is_null() ? nullptr : &*it;
}
std::optional<std::string> string_member(const json& o, const char* name) {
  const json* v = member(o, name);
  if (!v || !v->is_string()) return std::nullopt;
  return v->get<std::string>();
}
bool bool_member(const json& o, const char* name, bool fallback) {
  const json* v = member(o, name);
  return v && v->is_boolean() ? v->get<bool>() : fallback;
}

bool is_byte_piece(std::string_view p) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); };
  return p.size() == 6 && p.substr(0, 3) == "<0x" && hex(p[3]) && hex(p[4]) && p[5] == '>';
}

// Normalizers Gemma's files use: Replace(' ' -> '▁') and (Gemma 1's early files) Prepend('▁'),
// alone or in a Sequence. Anything else would tokenize differently, so it is refused.
Status read_normalizer(const json* n, bool& escape_spaces, std::string& prepend, const std::string& src) {
  if (!n) return {};
  const auto type = string_member(*n, "type").value_or("?");
  if (type == "Sequence") {
    const json* list = member(*n, "normalizers");
    if (!list || !list->is_array()) return corrupt_input("{}: malformed Sequence normalizer", src);
    for (const json& e : *list) GE_TRY(read_normalizer(&e, escape_spaces, prepend, src));
    return {};
  }
  if (type == "Replace") {
    const json* pattern = member(*n, "pattern");
    const auto from = pattern ? string_member(*pattern, "String") : std::nullopt;
    if (from == " " && string_member(*n, "content") == "\xE2\x96\x81" && !escape_spaces) {
      escape_spaces = true;
      return {};
    }
  } else if (type == "Prepend") {
    const auto content = string_member(*n, "prepend");
    if (content && content->find(' ') == std::string::npos && prepend.empty() && !escape_spaces) {
      prepend = *content;
      return {};
    }
  }
  return unsupported("{}: unsupported normalizer {}", src, n->dump().substr(0, 200));
}

}  // namespace

Result<Tokenizer> Tokenizer::from_hf_json(std::string_view text, const std::string& src) {
  TokenizerJsonSax sax;
  const bool parsed = json::sax_parse(text.begin(), text.end(), &sax, json::input_format_t::json, /*strict=*/true);
  if (!parsed || !sax.error.empty())
    return corrupt_input("{}: {}", src, sax.error.empty() ? std::string("not valid JSON") : sax.error);
  const json& doc = sax.rest;
  const json* model = member(doc, "model");
  if (!model || !model->is_object()) return corrupt_input("{}: no \"model\" object", src);
  if (string_member(*model, "type").value_or("BPE") != "BPE") return unsupported("{}: tokenizer model is not BPE", src);
  if (sax.vocab.empty()) return corrupt_input("{}: no BPE vocab", src);
  if (sax.merge_ends.empty()) return corrupt_input("{}: BPE model without merges", src);
  for (const char* option : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"}) {
    const json* v = member(*model, option);
    if (v && !(v->is_string() && v->get<std::string>().empty()) && !(v->is_number() && v->get<double>() == 0))
      return unsupported("{}: BPE option {} is not supported", src, option);
  }

  Spec s;
  // Ids may come in any order, and added tokens may extend the vocabulary (<image_soft_token>).
  std::vector<std::pair<int64_t, std::string>> entries;
  entries.reserve(sax.vocab.size());
  for (auto& [piece, id] : sax.vocab) entries.emplace_back(id, std::move(piece));
  std::vector<std::pair<int32_t, const json*>> added;
  if (const json* list = member(doc, "added_tokens"); list && list->is_array()) {
    for (const json& a : *list) {
      const json* id = member(a, "id");
      const auto content = string_member(a, "content");
      if (!id || !id->is_number_integer() || !content) return corrupt_input("{}: malformed added_tokens entry", src);
      const int64_t v = id->get<int64_t>();
      if (v < 0 || v >= (int64_t{1} << 24)) return corrupt_input("{}: added token id {} out of range", src, v);
      for (const char* option : {"lstrip", "rstrip", "single_word"})
        if (bool_member(a, option, false))
          return unsupported("{}: added token option {} is not supported", src, option);
      entries.emplace_back(v, *content);
      added.emplace_back(static_cast<int32_t>(v), &a);
    }
  }
  int64_t max_id = -1;
  for (const auto& [id, p] : entries) {
    if (id < 0 || id >= (int64_t{1} << 24)) return corrupt_input("{}: token id {} out of range", src, id);
    max_id = std::max(max_id, id);
  }
  // Holes in the ids are allowed, but not a tiny file that asks for a huge table.
  if (static_cast<size_t>(max_id) >= 2 * entries.size() + 1024)
    return corrupt_input("{}: {} tokens with ids up to {}", src, entries.size(), max_id);
  s.pieces.resize(static_cast<size_t>(max_id + 1));
  std::vector<bool> seen(s.pieces.size(), false);
  for (auto& [id, p] : entries) {
    const auto i = static_cast<size_t>(id);
    if (seen[i] && s.pieces[i] != p) return corrupt_input("{}: id {} names two different tokens", src, id);
    s.pieces[i] = std::move(p);
    seen[i] = true;
  }
  s.kinds.assign(s.pieces.size(), TokenKind::Normal);
  for (size_t i = 0; i < s.pieces.size(); ++i) {
    if (!seen[i]) s.kinds[i] = TokenKind::Unused;  // a hole in the ids: never produced
  }
  for (size_t i = 0; i < s.pieces.size(); ++i)  // HF names byte tokens "<0x0A>": upper-case hex
    if (is_byte_piece(s.pieces[i])) s.kinds[i] = TokenKind::Byte;
  s.byte_fallback = bool_member(*model, "byte_fallback", false);
  for (auto [id, a] : added) {
    s.kinds[static_cast<size_t>(id)] = bool_member(*a, "special", false) ? TokenKind::Control : TokenKind::UserDefined;
    if (bool_member(*a, "normalized", false)) s.normalized_added.push_back(id);
    else s.raw_added.push_back(id);
  }
  s.merge_bytes = std::move(sax.merge_bytes);
  s.merge_ends = std::move(sax.merge_ends);
  s.fuse_unk = bool_member(*model, "fuse_unk", false);
  s.ignore_merges = bool_member(*model, "ignore_merges", false);
  if (auto unk = string_member(*model, "unk_token")) {
    for (size_t i = 0; i < s.pieces.size(); ++i)
      if (s.pieces[i] == *unk) {
        s.unk = static_cast<int32_t>(i);
        break;
      }
  }

  s.escape_spaces = false;
  GE_TRY(read_normalizer(member(doc, "normalizer"), s.escape_spaces, s.segment_prefix, src));
  // Gemma 3 splits on ' ' after the normalizer has replaced every ' ': a no-op. Other
  // pre-tokenizers (Metaspace, ByteLevel, digit splitting, ...) are refused.
  if (const json* pre = member(doc, "pre_tokenizer")) {
    const json* pattern = member(*pre, "pattern");
    const bool noop_split = string_member(*pre, "type") == "Split" && pattern &&
                            string_member(*pattern, "String") == " " && s.escape_spaces;
    if (!noop_split) return unsupported("{}: unsupported pre_tokenizer {}", src, pre->dump().substr(0, 200));
  }
  return build(std::move(s), src);
}

}  // namespace gemma
