#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <queue>

#include <fmt/format.h>

#include "util/mapped_file.h"
#include "util/zstd_file.h"

namespace gemma {

namespace {
constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'
constexpr size_t kMaxPieceBytes = 1 << 16;

// "<0xHH>" -> HH, or nullopt.
std::optional<uint8_t> parse_byte_piece(const std::string& p) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (p.size() != 6 || p.compare(0, 3, "<0x") != 0 || p[5] != '>') return std::nullopt;
  const int hi = hex(p[3]), lo = hex(p[4]);
  if (hi < 0 || lo < 0) return std::nullopt;
  return static_cast<uint8_t>(hi * 16 + lo);
}
}  // namespace

Result<Tokenizer> Tokenizer::build(Spec s, const std::string& src) {
  const size_t n = s.pieces.size();
  if (n == 0) return error("{}: empty vocabulary", src);
  if (n > (size_t{1} << 24)) return error("{}: vocabulary of {} entries is implausibly large", src, n);
  if (s.kinds.empty()) s.kinds.assign(n, TokenKind::Normal);
  if (s.scores.empty()) s.scores.assign(n, 0.0f);
  if (s.kinds.size() != n || s.scores.size() != n)
    return error("{}: {} pieces but {} types and {} scores", src, n, s.kinds.size(), s.scores.size());
  Tokenizer t;
  t.pieces_ = std::move(s.pieces);
  t.kinds_ = std::move(s.kinds);
  t.scores_ = std::move(s.scores);
  t.add_dummy_prefix_ = s.add_dummy_prefix;
  t.ids_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (t.pieces_[i].size() > kMaxPieceBytes) return error("{}: token {} is longer than 64 KiB", src, i);
    t.ids_.emplace(t.pieces_[i], static_cast<int32_t>(i));  // first occurrence wins on duplicates
  }
  auto special = [&](std::optional<int32_t> id, const char* piece, int32_t& out) -> Status {
    if (!id) {
      auto it = t.ids_.find(piece);
      out = it == t.ids_.end() ? -1 : it->second;
      return {};
    }
    if (*id < 0 || static_cast<size_t>(*id) >= n) return error("{}: special token id {} out of range", src, *id);
    out = *id;
    return {};
  };
  GE_TRY(special(s.bos, "<bos>", t.bos_));
  GE_TRY(special(s.eos, "<eos>", t.eos_));
  GE_TRY(special(s.pad, "<pad>", t.pad_));
  GE_TRY(special(s.unk, "<unk>", t.unk_));
  if (t.bos_ < 0) return error("{}: no <bos> token", src);
  if (t.eos_ < 0) return error("{}: no <eos> token", src);

  // A byte piece must spell "<0xHH>"; anything else typed BYTE is treated as a normal piece.
  for (size_t i = 0; i < n; ++i)
    if (t.kinds_[i] == TokenKind::Byte && !parse_byte_piece(t.pieces_[i])) t.kinds_[i] = TokenKind::Normal;
  // Byte fallback pieces <0x00>..<0xFF>.
  for (int b = 0; b < 256; ++b) {
    auto it = t.ids_.find(fmt::format("<0x{:02X}>", b));
    t.byte_ids_[static_cast<size_t>(b)] = it == t.ids_.end() ? t.unk_ : it->second;
  }

  // Merge table: explicit merges in rank order, or (empty) rank by the merged piece's score.
  t.rank_by_score_ = s.merges.empty();
  std::vector<bool> scored(n, false);
  for (size_t r = 0; r < s.merges.size(); ++r) {
    auto a = t.ids_.find(s.merges[r].first), b = t.ids_.find(s.merges[r].second);
    auto m = t.ids_.find(s.merges[r].first + s.merges[r].second);
    if (a == t.ids_.end() || b == t.ids_.end() || m == t.ids_.end()) continue;
    const uint64_t key = static_cast<uint64_t>(a->second) << 32 | static_cast<uint32_t>(b->second);
    t.merges_.emplace(key, std::make_pair(static_cast<float>(r), m->second));
    // Merges come in rank order, so the first one that forms a piece sets its score.
    if (t.kinds_[static_cast<size_t>(m->second)] == TokenKind::Normal && !scored[static_cast<size_t>(m->second)]) {
      t.scores_[static_cast<size_t>(m->second)] = -static_cast<float>(r);
      scored[static_cast<size_t>(m->second)] = true;
    }
  }

  // Trie of the added tokens.
  t.trie_.emplace_back();
  std::vector<std::pair<std::string, int32_t>> added;
  for (int32_t id : s.added) {
    if (id < 0 || static_cast<size_t>(id) >= n) return error("{}: added token id {} out of range", src, id);
    added.emplace_back(t.pieces_[static_cast<size_t>(id)], id);
  }
  for (auto& [alias, id] : s.added_aliases) {
    if (id < 0 || static_cast<size_t>(id) >= n) return error("{}: added token id {} out of range", src, id);
    added.emplace_back(alias, id);
  }
  for (const auto& [p, id] : added) {
    if (p.empty()) continue;
    int32_t node = 0;
    for (unsigned char c : p) {
      auto& next = t.trie_[static_cast<size_t>(node)].next;
      auto it = std::lower_bound(next.begin(), next.end(), c, [](const auto& e, uint8_t v) { return e.first < v; });
      if (it != next.end() && it->first == c) {
        node = it->second;
      } else {
        const auto child = static_cast<int32_t>(t.trie_.size());
        next.insert(it, {c, child});
        t.trie_.emplace_back();
        node = child;
      }
    }
    if (t.trie_[static_cast<size_t>(node)].token < 0) t.trie_[static_cast<size_t>(node)].token = id;
    t.may_start_added_[static_cast<unsigned char>(p[0])] = true;
  }
  return t;
}

std::optional<int32_t> Tokenizer::find(std::string_view piece) const {
  auto it = ids_.find(std::string(piece));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

std::pair<size_t, int32_t> Tokenizer::match_added(std::string_view text, size_t pos) const {
  size_t best_len = 0;
  int32_t best = -1;
  int32_t node = 0;
  for (size_t i = pos; i < text.size(); ++i) {
    const auto& next = trie_[static_cast<size_t>(node)].next;
    const auto c = static_cast<uint8_t>(text[i]);
    auto it = std::lower_bound(next.begin(), next.end(), c, [](const auto& e, uint8_t v) { return e.first < v; });
    if (it == next.end() || it->first != c) break;
    node = it->second;
    if (trie_[static_cast<size_t>(node)].token >= 0) {
      best_len = i - pos + 1;
      best = trie_[static_cast<size_t>(node)].token;
    }
  }
  return {best_len, best};
}

std::optional<std::pair<float, int32_t>> Tokenizer::merge_of(int32_t a, int32_t b) const {
  if (!rank_by_score_) {
    auto it = merges_.find(static_cast<uint64_t>(a) << 32 | static_cast<uint32_t>(b));
    if (it == merges_.end()) return std::nullopt;
    return it->second;
  }
  // SentencePiece BPE: the pair merges if the concatenation is a piece; higher score merges first.
  thread_local std::string buf;
  buf.assign(pieces_[static_cast<size_t>(a)]);
  buf += pieces_[static_cast<size_t>(b)];
  auto it = ids_.find(buf);
  if (it == ids_.end()) return std::nullopt;
  const TokenKind k = kinds_[static_cast<size_t>(it->second)];
  if (k != TokenKind::Normal && k != TokenKind::UserDefined) return std::nullopt;
  return std::make_pair(-scores_[static_cast<size_t>(it->second)], it->second);
}

void Tokenizer::encode_segment(std::string_view raw, std::vector<int32_t>& out) const {
  if (raw.empty()) return;
  // Normalize: ' ' -> '▁'.
  std::string text;
  text.reserve(raw.size() + 8);
  for (char c : raw) {
    if (c == ' ') text += kSpaceMark;
    else text += c;
  }
  if (!rank_by_score_) {
    bpe(text, out);
    return;
  }
  // SentencePiece matches user-defined pieces in the normalized text too (a literal "▁" next to a
  // space forms a run of '▁'); HF gets the same result from its first-ranked merges.
  size_t seg = 0;
  for (size_t pos = 0; pos < text.size();) {
    if (may_start_added_[static_cast<unsigned char>(text[pos])]) {
      auto [len, id] = match_added(text, pos);
      if (len > 0) {
        bpe(std::string_view(text).substr(seg, pos - seg), out);
        out.push_back(id);
        pos += len;
        seg = pos;
        continue;
      }
    }
    ++pos;
  }
  bpe(std::string_view(text).substr(seg), out);
}

void Tokenizer::bpe(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  // Initial symbols: one per character; characters outside the vocabulary become byte tokens,
  // which never merge.
  struct Sym {
    int32_t id;
    int32_t prev, next;
    bool mergeable;
  };
  std::vector<Sym> syms;
  syms.reserve(text.size());
  std::string ch;
  for (size_t i = 0; i < text.size();) {
    size_t len = utf8_sequence_length(text, i);
    if (len == 0) len = 1;  // unreachable: input was validated
    ch.assign(text, i, len);
    auto it = ids_.find(ch);
    if (it != ids_.end()) {
      syms.push_back({it->second, 0, 0, true});
    } else {
      for (size_t k = 0; k < len; ++k)
        syms.push_back({byte_ids_[static_cast<unsigned char>(text[i + k])], 0, 0, false});
    }
    i += len;
  }
  const auto n = static_cast<int32_t>(syms.size());
  for (int32_t i = 0; i < n; ++i) syms[static_cast<size_t>(i)].prev = i - 1, syms[static_cast<size_t>(i)].next = i + 1 < n ? i + 1 : -1;

  // Candidate pairs in a min-heap by (rank, left position); stale entries are skipped on pop.
  struct Cand {
    float rank;
    int32_t left, left_id, right_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t l) {
    if (l < 0) return;
    const Sym& a = syms[static_cast<size_t>(l)];
    if (a.next < 0) return;
    const Sym& b = syms[static_cast<size_t>(a.next)];
    if (!a.mergeable || !b.mergeable) return;
    if (auto m = merge_of(a.id, b.id)) heap.push({m->first, l, a.id, b.id});
  };
  for (int32_t i = 0; i < n; ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    Sym& a = syms[static_cast<size_t>(c.left)];
    if (a.id != c.left_id || a.next < 0) continue;
    Sym& b = syms[static_cast<size_t>(a.next)];
    if (b.id != c.right_id) continue;
    auto m = merge_of(a.id, b.id);
    if (!m) continue;
    a.id = m->second;
    b.id = -1;  // dead
    a.next = b.next;
    if (b.next >= 0) syms[static_cast<size_t>(b.next)].prev = c.left;
    push(a.prev);
    push(c.left);
  }
  for (int32_t i = n > 0 ? 0 : -1; i >= 0; i = syms[static_cast<size_t>(i)].next) out.push_back(syms[static_cast<size_t>(i)].id);
}

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_bos) const {
  if (auto bad = utf8_first_invalid(text))
    return error("invalid UTF-8 in the input at byte {} (0x{:02X})", *bad, static_cast<unsigned char>(text[*bad]));
  std::vector<int32_t> out;
  if (add_bos) out.push_back(bos_);
  std::string prefixed;
  if (add_dummy_prefix_ && !text.empty()) {
    prefixed = " " + std::string(text);
    text = prefixed;
  }
  size_t seg = 0;
  for (size_t pos = 0; pos < text.size();) {
    if (may_start_added_[static_cast<unsigned char>(text[pos])]) {
      auto [len, id] = match_added(text, pos);
      if (len > 0) {
        encode_segment(text.substr(seg, pos - seg), out);
        out.push_back(id);
        pos += len;
        seg = pos;
        continue;
      }
    }
    ++pos;
  }
  encode_segment(text.substr(seg), out);
  return out;
}

std::string Tokenizer::token_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) return {};
  const std::string& p = pieces_[static_cast<size_t>(id)];
  if (kinds_[static_cast<size_t>(id)] == TokenKind::Byte) return std::string(1, static_cast<char>(*parse_byte_piece(p)));
  std::string out;
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
  auto flush_bytes = [&] {
    if (bytes.empty()) return;
    if (utf8_first_invalid(bytes)) {
      for (size_t i = 0; i < bytes.size(); ++i) out += "\xEF\xBF\xBD";
    } else {
      out += bytes;
    }
    bytes.clear();
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) continue;
    if (kinds_[static_cast<size_t>(id)] == TokenKind::Byte) {
      bytes += token_bytes(id);
      continue;
    }
    flush_bytes();
    out += token_bytes(id);
  }
  flush_bytes();
  return out;
}

Result<Tokenizer> Tokenizer::from_file(const std::string& path) {
  const std::string name = std::filesystem::path(path).filename().string();
  if (name.find(".json") != std::string::npos) {
    GE_ASSIGN(std::string text, read_file_maybe_zstd(path, uint64_t{1} << 30));
    return from_hf_json(text, path);
  }
  GE_ASSIGN(std::string bytes, read_file_maybe_zstd(path, uint64_t{1} << 30));
  if (!bytes.empty() && bytes[0] == '{') return from_hf_json(bytes, path);
  return from_sentencepiece({reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, path);
}

}  // namespace gemma
