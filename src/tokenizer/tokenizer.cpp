// Tokenizer construction (tables shared by every loader), lookups, decoding.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <fmt/format.h>

#include "util/zstd_file.h"

namespace gemma {

namespace {

constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'
constexpr size_t kMaxPieceBytes = 1 << 16;
constexpr size_t kMaxVocab = size_t{1} << 24;

// "<0xNN>" (upper-case hex, as SentencePiece and HF write it) -> NN, or -1.
int byte_piece_value(std::string_view p) {
  if (p.size() != 6 || p.substr(0, 3) != "<0x" || p[5] != '>') return -1;
  int v = 0;
  for (char c : p.substr(3, 2)) {
    v *= 16;
    if (c >= '0' && c <= '9') v += c - '0';
    else if (c >= 'A' && c <= 'F') v += c - 'A' + 10;
    else return -1;
  }
  return v;
}

std::string escape_spaces(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == ' ') out += kSpaceMark;
    else out += c;
  }
  return out;
}

}  // namespace

void Tokenizer::Trie::add(std::string_view text, int32_t id) {
  if (nodes.empty()) nodes.emplace_back();
  if (text.empty()) return;
  size_t node = 0;
  for (unsigned char c : text) {
    auto& next = nodes[node].next;
    auto it = std::lower_bound(next.begin(), next.end(), c, [](const auto& e, uint8_t v) { return e.first < v; });
    if (it != next.end() && it->first == c) {
      node = static_cast<size_t>(it->second);
    } else {
      const auto child = static_cast<int32_t>(nodes.size());
      next.insert(it, {c, child});
      nodes.emplace_back();  // invalidates `next`; not used again
      node = static_cast<size_t>(child);
    }
  }
  if (nodes[node].token < 0) nodes[node].token = id;  // the first of duplicate texts wins
  may_start[static_cast<unsigned char>(text[0])] = true;
}

std::pair<size_t, int32_t> Tokenizer::Trie::match(std::string_view text, size_t pos) const {
  size_t best_len = 0;
  int32_t best = -1;
  size_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& next = nodes[node].next;
    const auto c = static_cast<uint8_t>(text[i]);
    auto it = std::lower_bound(next.begin(), next.end(), c, [](const auto& e, uint8_t v) { return e.first < v; });
    if (it == next.end() || it->first != c) break;
    node = static_cast<size_t>(it->second);
    if (nodes[node].token >= 0) {
      best_len = i - pos + 1;
      best = nodes[node].token;
    }
  }
  return {best_len, best};
}

Result<Tokenizer> Tokenizer::build(Spec s, const std::string& src) {
  const size_t n = s.pieces.size();
  if (n == 0) return corrupt_input("{}: empty vocabulary", src);
  if (n > kMaxVocab) return corrupt_input("{}: vocabulary of {} entries is implausibly large", src, n);
  if (s.kinds.empty()) s.kinds.assign(n, TokenKind::Normal);
  const bool rank_by_score = s.merge_ends.empty();
  if (rank_by_score && s.scores.empty()) s.scores.assign(n, 0.0f);
  if (s.kinds.size() != n || (rank_by_score && s.scores.size() != n))
    return corrupt_input("{}: {} pieces but {} types and {} scores", src, n, s.kinds.size(), s.scores.size());
  for (size_t i = 0; i < n; ++i)
    if (s.pieces[i].size() > kMaxPieceBytes) return corrupt_input("{}: token {} is longer than 64 KiB", src, i);

  Tokenizer t;
  if (!t.pieces_.assign(s.pieces)) return corrupt_input("{}: the token texts add up to 4 GiB or more", src);
  std::vector<std::string>().swap(s.pieces);
  t.kinds_ = std::move(s.kinds);
  t.index_.build(t.pieces_);
  t.dummy_prefix_ = s.dummy_prefix;
  t.segment_prefix_ = std::move(s.segment_prefix);
  t.escape_spaces_ = s.escape_spaces;
  t.byte_fallback_ = s.byte_fallback;
  t.fuse_unk_ = s.fuse_unk;
  t.ignore_merges_ = s.ignore_merges;

  auto special = [&](std::optional<int32_t> id, const char* name, int32_t& out) -> Status {
    if (!id) {
      out = t.index_.find(name, t.pieces_);
      return {};
    }
    if (*id < 0 || static_cast<size_t>(*id) >= n) return corrupt_input("{}: {} id {} out of range", src, name, *id);
    out = *id;
    return {};
  };
  GE_TRY(special(s.bos, "<bos>", t.bos_));
  GE_TRY(special(s.eos, "<eos>", t.eos_));
  GE_TRY(special(s.pad, "<pad>", t.pad_));
  GE_TRY(special(s.unk, "<unk>", t.unk_));
  if (t.bos_ < 0) return corrupt_input("{}: no <bos> token", src);
  if (t.eos_ < 0) return corrupt_input("{}: no <eos> token", src);
  // GGUF and tokenizer.json call <unk> a control/special token; one kind for every source.
  if (t.unk_ >= 0) t.kinds_[static_cast<size_t>(t.unk_)] = TokenKind::Unknown;
  if (auto id = t.find("<start_of_turn>")) t.start_of_turn_ = id;
  if (auto id = t.find("<end_of_turn>")) t.end_of_turn_ = id;

  // Byte fallback pieces.
  t.byte_value_.assign(n, -1);
  t.byte_ids_.fill(-1);
  for (size_t i = 0; i < n; ++i) {
    if (t.kinds_[i] != TokenKind::Byte) continue;
    const int v = byte_piece_value(t.pieces_[i]);
    if (v < 0) return corrupt_input("{}: byte token {} is '{}', not <0xNN>", src, i, utf8_sanitize(t.pieces_[i]));
    t.byte_value_[i] = static_cast<int16_t>(v);
    if (t.byte_ids_[static_cast<size_t>(v)] < 0) t.byte_ids_[static_cast<size_t>(v)] = static_cast<int32_t>(i);
  }
  for (size_t c = 0; c < t.ascii_ids_.size(); ++c) {
    const char ch = static_cast<char>(c);
    t.ascii_ids_[c] = t.index_.find(std::string_view(&ch, 1), t.pieces_);
  }

  // Merge ranks. HF: (a, b) -> rank in the merge list. SentencePiece: a pair merges into the piece
  // its texts make, ranked by that piece's score (higher first); SentencePiece only merges into
  // normal and user-defined pieces.
  std::string buf;
  std::vector<bool> scored(n, false);
  t.scores_.assign(n, 0.0f);
  for (size_t i = 0; i < n; ++i)
    if (t.kinds_[i] == TokenKind::Control || t.kinds_[i] == TokenKind::UserDefined) t.scores_[i] = -1000.0f;
  t.rank_by_score_ = rank_by_score;
  if (!rank_by_score) {
    const size_t count = s.merge_ends.size() / 2;
    if (count > size_t{INT32_MAX}) return corrupt_input("{}: too many merges", src);
    t.merges_.reserve(count);
    uint32_t begin = 0;
    for (size_t r = 0; r < count; ++r) {
      const uint32_t mid = s.merge_ends[2 * r], end = s.merge_ends[2 * r + 1];
      const std::string_view a = std::string_view(s.merge_bytes).substr(begin, mid - begin);
      const std::string_view b = std::string_view(s.merge_bytes).substr(mid, end - mid);
      begin = end;
      buf.assign(a);
      buf += b;
      const int32_t ia = t.index_.find(a, t.pieces_), ib = t.index_.find(b, t.pieces_);
      const int32_t im = t.index_.find(buf, t.pieces_);
      if (ia < 0 || ib < 0 || im < 0)  // HF refuses such a file too
        return corrupt_input("{}: merge #{} ('{}' '{}') uses a token outside the vocabulary", src, r, utf8_sanitize(a),
                             utf8_sanitize(b));
      t.merges_.put(ia, ib, {static_cast<int32_t>(r), im});
      if (!scored[static_cast<size_t>(im)] && t.kinds_[static_cast<size_t>(im)] == TokenKind::Normal) {
        t.scores_[static_cast<size_t>(im)] = -static_cast<float>(r);  // merges come in rank order
        scored[static_cast<size_t>(im)] = true;
      }
    }
  } else {
    t.scores_ = s.scores;
    std::vector<int32_t> order;
    for (size_t i = 0; i < n; ++i)
      if (t.kinds_[i] == TokenKind::Normal || t.kinds_[i] == TokenKind::UserDefined)
        order.push_back(static_cast<int32_t>(i));
    auto score = [&](int32_t id) {
      const float v = s.scores[static_cast<size_t>(id)];
      return std::isnan(v) ? -INFINITY : v;  // NaN would break the sort's ordering
    };
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return score(a) > score(b); });
    t.merge_rank_.assign(n, -1);
    int32_t rank = -1;
    for (size_t k = 0; k < order.size(); ++k) {
      if (k == 0 || score(order[k]) != score(order[k - 1])) rank = static_cast<int32_t>(k);
      t.merge_rank_[static_cast<size_t>(order[k])] = rank;
    }
  }

  // Which characters are adjacent inside some piece (see bpe()). Invalid bytes in a hostile piece
  // get code points past U+10FFFF, which no input character has.
  for (size_t id = 0; id < n; ++id) {
    const std::string_view p = t.pieces_[id];
    uint32_t prev = 0;
    for (size_t i = 0; i < p.size();) {
      const size_t len = utf8_sequence_length(p, i);
      const uint32_t cp = len ? utf8_code_point(p.substr(i, len)) : 0x110000u + static_cast<unsigned char>(p[i]);
      if (i > 0) t.adjacent_.insert(prev, cp);
      prev = cp;
      i += std::max<size_t>(len, 1);
    }
  }

  // Added tokens.
  t.raw_added_.nodes.emplace_back();
  t.normalized_added_.nodes.emplace_back();
  for (int32_t id : s.raw_added) {
    if (id < 0 || static_cast<size_t>(id) >= n) return corrupt_input("{}: added token id {} out of range", src, id);
    t.raw_added_.add(t.pieces_[static_cast<size_t>(id)], id);
  }
  for (int32_t id : s.normalized_added) {
    if (id < 0 || static_cast<size_t>(id) >= n) return corrupt_input("{}: added token id {} out of range", src, id);
    const std::string_view p = t.pieces_[static_cast<size_t>(id)];
    t.normalized_added_.add(t.escape_spaces_ ? escape_spaces(p) : p, id);
  }
  return t;
}

std::optional<int32_t> Tokenizer::find(std::string_view piece) const {
  const int32_t id = index_.find(piece, pieces_);
  if (id < 0) return std::nullopt;
  return id;
}

std::string_view Tokenizer::piece(int32_t id) const {
  return id >= 0 && id < vocab_size() ? pieces_[static_cast<size_t>(id)] : std::string_view();
}

tok::PairMap::Merge Tokenizer::score_merge(int32_t a, int32_t b, std::string& buf) const {
  buf.assign(pieces_[static_cast<size_t>(a)]);
  buf += pieces_[static_cast<size_t>(b)];
  const int32_t id = index_.find(buf, pieces_);
  if (id < 0 || merge_rank_[static_cast<size_t>(id)] < 0) return {};
  return {merge_rank_[static_cast<size_t>(id)], id};
}

TokenKind Tokenizer::kind(int32_t id) const {
  return id >= 0 && id < vocab_size() ? kinds_[static_cast<size_t>(id)] : TokenKind::Unused;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  if (byte_value_[static_cast<size_t>(id)] >= 0)
    return std::string(1, static_cast<char>(byte_value_[static_cast<size_t>(id)]));
  const std::string_view p = pieces_[static_cast<size_t>(id)];
  std::string out;
  out.reserve(p.size());
  for (size_t i = 0; i < p.size();) {
    if (p.compare(i, kSpaceMark.size(), kSpaceMark) == 0) {
      out += ' ';
      i += kSpaceMark.size();
    } else {
      out += p[i++];
    }
  }
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> ids) const {
  std::string out, bytes;
  int byte_tokens = 0;
  auto flush_bytes = [&] {
    if (utf8_first_invalid(bytes)) {
      for (int i = 0; i < byte_tokens; ++i) out += "\xEF\xBF\xBD";  // HF's ByteFallback decoder
    } else {
      out += bytes;
    }
    bytes.clear();
    byte_tokens = 0;
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (byte_value_[static_cast<size_t>(id)] >= 0) {
      bytes += static_cast<char>(byte_value_[static_cast<size_t>(id)]);
      ++byte_tokens;
      continue;
    }
    if (byte_tokens > 0) flush_bytes();
    out += token_bytes(id);
  }
  if (byte_tokens > 0) flush_bytes();
  return out;
}

Result<Tokenizer> Tokenizer::from_file(const std::string& path) {
  // A GGUF file: its tokenizer.ggml.* vocabulary (read through the map, not into memory).
  if (path.size() > 5 && path.compare(path.size() - 5, 5, ".gguf") == 0) {
    GE_ASSIGN(auto gguf, GgufFile::open(path));
    return from_gguf(*gguf);
  }
  GE_ASSIGN(std::string bytes, read_file_maybe_zstd(path, uint64_t{1} << 30));
  const std::string name = std::filesystem::path(path).filename().string();
  // A serialized ModelProto never starts with '{' (field 15, wire type 3, is not in the schema).
  if (name.find(".json") != std::string::npos || (!bytes.empty() && bytes[0] == '{')) return from_hf_json(bytes, path);
  return from_sentencepiece({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, path);
}

}  // namespace gemma
