// Encoding: added tokens, normalization, then BPE over each remaining stretch.
#include <algorithm>

#include <fmt/format.h>

#include "tokenizer/tokenizer.h"

namespace gemma {

namespace {
constexpr std::string_view kSpaceMark = "\xE2\x96\x81";  // U+2581 '▁'
}  // namespace

Result<std::vector<int32_t>> Tokenizer::encode(std::string_view text, bool add_bos) const {
  if (auto bad = utf8_first_invalid(text))
    return invalid_argument("invalid UTF-8 in the input at byte {} (0x{:02X})", *bad,
                            static_cast<unsigned char>(text[*bad]));
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos) out.push_back(bos_);
  std::string prefixed;
  if (dummy_prefix_ && !text.empty()) {
    prefixed = " ";
    prefixed += text;
    text = prefixed;
  }
  size_t seg = 0;
  for (size_t pos = 0; pos < text.size();) {
    if (raw_added_.may_start[static_cast<unsigned char>(text[pos])]) {
      auto [len, id] = raw_added_.match(text, pos);
      if (len > 0) {
        GE_TRY(encode_segment(text.substr(seg, pos - seg), out));
        out.push_back(id);
        pos += len;
        seg = pos;
        continue;
      }
    }
    ++pos;
  }
  GE_TRY(encode_segment(text.substr(seg), out));
  return out;
}

Status Tokenizer::encode_segment(std::string_view raw, std::vector<int32_t>& out) const {
  if (raw.empty()) return {};
  std::string text = segment_prefix_;
  text.reserve(text.size() + raw.size() + 16);
  for (char c : raw) {
    if (c == ' ' && escape_spaces_) text += kSpaceMark;
    else text += c;
  }
  if (normalized_added_.empty()) return bpe(text, out);
  // Added tokens that match the normalized text (SentencePiece's user-defined pieces, HF's
  // `normalized` added tokens), e.g. a run of '▁' made from spaces.
  const std::string_view t = text;
  size_t seg = 0;
  for (size_t pos = 0; pos < t.size();) {
    if (normalized_added_.may_start[static_cast<unsigned char>(t[pos])]) {
      auto [len, id] = normalized_added_.match(t, pos);
      if (len > 0) {
        GE_TRY(bpe(t.substr(seg, pos - seg), out));
        out.push_back(id);
        pos += len;
        seg = pos;
        continue;
      }
    }
    ++pos;
  }
  return bpe(t.substr(seg), out);
}

int32_t Tokenizer::char_id(std::string_view ch) const {
  if (ch.size() == 1 && static_cast<unsigned char>(ch[0]) < 0x80) return ascii_ids_[static_cast<unsigned char>(ch[0])];
  return index_.find(ch, pieces_);
}

// BPE over one stretch. Symbols start as characters (or byte tokens), in a linked list; candidate
// pairs wait in a min-heap ordered by (rank, position). A merge only touches its two neighbours, so n
// symbols cost O(n log n); stale heap entries are recognised by their ids (a symbol's piece only
// grows, so ids never repeat at a position) and skipped.
//
// Gemma's stretches can be a whole document (no pre-tokenizer), and a heap over a million symbols
// is cache-hostile. So the stretch is first cut where no merge can ever cross: between two
// characters that are adjacent in no vocabulary piece (every merged symbol is a piece whose text is
// the text it covers, so a symbol across such a boundary cannot exist). Merges on the two sides
// never interact, so running BPE on each chunk alone gives exactly the same tokens. In practice
// the cuts fall before most '▁', and chunks are words.
Status Tokenizer::bpe(std::string_view text, std::vector<int32_t>& out) const {
  if (text.empty()) return {};
  if (ignore_merges_) {
    if (const int32_t id = index_.find(text, pieces_); id >= 0) {
      out.push_back(id);
      return {};
    }
  }
  std::vector<Sym> syms;
  syms.reserve(text.size());
  std::vector<int32_t> cuts = {0};  // chunk starts
  bool last_was_unk = false;
  uint32_t prev_cp = 0;
  bool prev_plain = false;  // the previous symbol is a character whose piece is its text
  for (size_t i = 0; i < text.size();) {
    const size_t len = std::max<size_t>(1, utf8_sequence_length(text, i));  // input is valid UTF-8
    const std::string_view ch = text.substr(i, len);
    i += len;
    if (const int32_t id = char_id(ch); id >= 0) {
      const uint32_t cp = utf8_code_point(ch);
      if (prev_plain && !adjacent_.contains(prev_cp, cp)) cuts.push_back(static_cast<int32_t>(syms.size()));
      syms.push_back({id, 0, 0});
      prev_cp = cp;
      prev_plain = true;
      last_was_unk = false;
      continue;
    }
    // Not in the vocabulary: one token per byte, else <unk>.
    prev_plain = false;
    bool bytes_ok = byte_fallback_;
    for (size_t k = 0; bytes_ok && k < len; ++k) bytes_ok = byte_ids_[static_cast<unsigned char>(ch[k])] >= 0;
    if (bytes_ok) {
      for (unsigned char c : ch) syms.push_back({byte_ids_[c], 0, 0});
      last_was_unk = false;
    } else if (unk_ >= 0) {
      if (!(fuse_unk_ && last_was_unk)) syms.push_back({unk_, 0, 0});
      last_was_unk = true;
    } else {
      return invalid_argument("character U+{:04X} is not in the vocabulary, which has neither byte fallback nor <unk>",
                              utf8_code_point(ch));
    }
  }
  cuts.push_back(static_cast<int32_t>(syms.size()));
  std::vector<Cand> heap;
  for (size_t k = 0; k + 1 < cuts.size(); ++k) merge_chunk(syms, cuts[k], cuts[k + 1], heap, out);
  return {};
}

void Tokenizer::merge_chunk(std::vector<Sym>& syms, int32_t begin, int32_t end, std::vector<Cand>& heap,
                            std::vector<int32_t>& out) const {
  if (begin >= end) return;
  for (int32_t i = begin; i < end; ++i)
    syms[static_cast<size_t>(i)].prev = i - 1, syms[static_cast<size_t>(i)].next = i + 1 < end ? i + 1 : -1;
  auto later = [](const Cand& x, const Cand& y) { return x.rank != y.rank ? x.rank > y.rank : x.left > y.left; };
  heap.clear();
  std::string buf;
  // Queues the pair starting at symbol `left`, if it merges.
  auto consider = [&](int32_t left, bool keep_heap) {
    if (left < begin) return;
    const Sym& a = syms[static_cast<size_t>(left)];
    if (a.next < 0) return;
    const int32_t right_id = syms[static_cast<size_t>(a.next)].id;
    const tok::PairMap::Merge m = rank_by_score_ ? score_merge(a.id, right_id, buf) : merges_.find(a.id, right_id);
    if (m.rank < 0) return;
    heap.push_back({m.rank, left, a.id, right_id, m.id});
    if (keep_heap) std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = begin; i + 1 < end; ++i) consider(i, false);
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Cand c = heap.back();
    heap.pop_back();
    Sym& a = syms[static_cast<size_t>(c.left)];
    if (a.id != c.left_id || a.next < 0) continue;
    Sym& b = syms[static_cast<size_t>(a.next)];
    if (b.id != c.right_id) continue;
    a.id = c.merged;
    b.id = -1;  // dead
    a.next = b.next;
    if (b.next >= 0) syms[static_cast<size_t>(b.next)].prev = c.left;
    consider(a.prev, true);
    consider(c.left, true);
  }
  for (int32_t i = begin; i >= 0; i = syms[static_cast<size_t>(i)].next) out.push_back(syms[static_cast<size_t>(i)].id);
}

}  // namespace gemma
