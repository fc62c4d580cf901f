// Flat tables for the tokenizer: the vocabulary's texts in one buffer, and open-addressing hash
// tables for its two hot lookups: piece text -> id (262k entries, hit once per character and per
// candidate merge) and token pair -> merge (the merge list of tokenizer.json, hit once per adjacent
// pair). std::string and std::unordered_map cost a heap block per entry and a cache miss per probe;
// these are one or two arrays each, which also makes loading several times faster.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace gemma::tok {

// Capacity: a power of two with the load factor at most ~0.7.
inline size_t table_capacity(size_t n) {
  size_t cap = 16;
  while (cap * 7 < n * 10) cap *= 2;
  return cap;
}

// The pieces' texts back to back: the bytes plus 4 per piece, instead of a 32-byte std::string
// (and a heap block past 15 bytes) each.
class PieceTable {
 public:
  // False if the texts add up to 4 GiB or more.
  bool assign(const std::vector<std::string>& pieces) {
    size_t total = 0;
    for (const std::string& p : pieces) total += p.size();
    if (total > UINT32_MAX) return false;
    bytes_.clear();
    bytes_.reserve(total);
    ends_.clear();
    ends_.reserve(pieces.size());
    for (const std::string& p : pieces) {
      bytes_ += p;
      ends_.push_back(static_cast<uint32_t>(bytes_.size()));
    }
    return true;
  }
  size_t size() const { return ends_.size(); }
  std::string_view operator[](size_t i) const {
    const uint32_t begin = i == 0 ? 0 : ends_[i - 1];
    return std::string_view(bytes_).substr(begin, ends_[i] - begin);
  }

 private:
  std::string bytes_;
  std::vector<uint32_t> ends_;
};

// Piece text -> id over a table of pieces the index does not own. A slot is 4 bytes: the id (ids
// are < 2^24, Tokenizer::build checks) and 8 bits of the hash, so most probes that miss never
// read a piece's text.
class PieceIndex {
 public:
  // The first id wins when a piece occurs twice; empty pieces are not indexed.
  void build(const PieceTable& pieces) {
    slots_.assign(table_capacity(pieces.size()), kEmpty);
    mask_ = slots_.size() - 1;
    for (size_t id = 0; id < pieces.size(); ++id) {
      const std::string_view p = pieces[id];
      if (p.empty()) continue;
      const size_t h = hash(p);
      for (size_t s = h & mask_;; s = (s + 1) & mask_) {
        if (slots_[s] == kEmpty) {
          slots_[s] = static_cast<uint32_t>(id) | tag(h);
          break;
        }
        if ((slots_[s] & kTagMask) == tag(h) && pieces[slots_[s] & kIdMask] == p) break;
      }
    }
  }

  // The id of `piece`, or -1.
  int32_t find(std::string_view piece, const PieceTable& pieces) const {
    if (slots_.empty()) return -1;
    const size_t h = hash(piece);
    for (size_t s = h & mask_;; s = (s + 1) & mask_) {
      const uint32_t slot = slots_[s];
      if (slot == kEmpty) return -1;
      if ((slot & kTagMask) == tag(h) && pieces[slot & kIdMask] == piece) return static_cast<int32_t>(slot & kIdMask);
    }
  }

 private:
  static constexpr uint32_t kIdMask = (1u << 24) - 1, kTagMask = ~kIdMask, kEmpty = ~uint32_t{0};
  static size_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  // The hash's top 8 bits (the low bits pick the slot); never all ones, so no slot equals kEmpty.
  static uint32_t tag(size_t h) {
    return static_cast<uint32_t>(std::min<uint64_t>(static_cast<uint64_t>(h) >> 56, 0xFE)) << 24;
  }
  std::vector<uint32_t> slots_;
  size_t mask_ = 0;
};

// (left id, right id) -> (rank, merged id). Lower rank merges first.
class PairMap {
 public:
  struct Merge {
    int32_t rank = -1;
    int32_t id = -1;
  };

  // Clears the table and sizes it for n entries (it grows past that).
  void reserve(size_t n) {
    slots_.assign(table_capacity(n), Slot{});
    mask_ = slots_.size() - 1;
    size_ = 0;
  }
  size_t size() const { return size_; }

  // Inserts or overwrites (HF keeps the last of duplicate merges).
  void put(int32_t a, int32_t b, Merge m) {
    if (slots_.empty() || (size_ + 1) * 10 > slots_.size() * 7) grow();
    const uint64_t k = key(a, b);
    for (size_t s = hash(k) & mask_;; s = (s + 1) & mask_) {
      if (slots_[s].key == kEmpty) {
        slots_[s] = {k, m};
        ++size_;
        return;
      }
      if (slots_[s].key == k) {
        slots_[s].merge = m;
        return;
      }
    }
  }

  // The merge of the pair, or rank -1 if the pair does not merge.
  Merge find(int32_t a, int32_t b) const {
    if (slots_.empty()) return {};
    const uint64_t k = key(a, b);
    for (size_t s = hash(k) & mask_;; s = (s + 1) & mask_) {
      if (slots_[s].key == k) return slots_[s].merge;
      if (slots_[s].key == kEmpty) return {};
    }
  }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};  // ids are < 2^24, so no real key is all ones
  struct Slot {
    uint64_t key = kEmpty;
    Merge merge;
  };
  static uint64_t key(int32_t a, int32_t b) {
    return static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32 | static_cast<uint32_t>(b);
  }
  static size_t hash(uint64_t k) {  // splitmix64's finalizer: every key bit reaches the low bits
    k = (k ^ (k >> 30)) * 0xBF58476D1CE4E5B9ull;
    k = (k ^ (k >> 27)) * 0x94D049BB133111EBull;
    return static_cast<size_t>(k ^ (k >> 31));
  }
  void grow() {
    std::vector<Slot> old = std::move(slots_);
    reserve(std::max<size_t>(16, old.size() * 2));
    for (const Slot& s : old)
      if (s.key != kEmpty) put(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xFFFFFFFF), s.merge);
  }
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
};

// A set of (code point, code point) pairs.
class CodePairSet {
 public:
  void reserve(size_t n) { map_.reserve(n); }
  void insert(uint32_t a, uint32_t b) { map_.put(static_cast<int32_t>(a), static_cast<int32_t>(b), {0, 0}); }
  bool contains(uint32_t a, uint32_t b) const {
    return map_.find(static_cast<int32_t>(a), static_cast<int32_t>(b)).rank >= 0;
  }

 private:
  PairMap map_;
};

}  // namespace gemma::tok
