// Flat open-addressing hash tables for the tokenizer's two hot lookups: piece text -> id (262k
// entries, hit once per character) and token pair -> merge (515k entries, hit once per adjacent
// pair). std::unordered_map costs a node allocation per entry and a cache miss per probe; these are
// one array each, which also makes loading several times faster.
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

// Piece text -> id over a vector of pieces the index does not own. Each slot keeps 32 bits of the
// hash next to the id, so a probe only reads a piece's text when the hashes agree.
class PieceIndex {
 public:
  // The first id wins when a piece occurs twice; empty pieces are not indexed.
  void build(const std::vector<std::string>& pieces) {
    slots_.assign(table_capacity(pieces.size()), Slot{});
    mask_ = slots_.size() - 1;
    for (size_t id = 0; id < pieces.size(); ++id) {
      const std::string& p = pieces[id];
      if (p.empty()) continue;
      const size_t h = hash(p);
      for (size_t s = h & mask_;; s = (s + 1) & mask_) {
        if (slots_[s].id < 0) {
          slots_[s] = {static_cast<int32_t>(id), tag(h)};
          break;
        }
        if (slots_[s].tag == tag(h) && pieces[static_cast<size_t>(slots_[s].id)] == p) break;
      }
    }
  }

  // The id of `piece`, or -1.
  int32_t find(std::string_view piece, const std::vector<std::string>& pieces) const {
    if (slots_.empty()) return -1;
    const size_t h = hash(piece);
    for (size_t s = h & mask_;; s = (s + 1) & mask_) {
      const Slot& slot = slots_[s];
      if (slot.id < 0) return -1;
      if (slot.tag == tag(h) && pieces[static_cast<size_t>(slot.id)] == piece) return slot.id;
    }
  }

 private:
  struct Slot {
    int32_t id = -1;
    uint32_t tag = 0;
  };
  static size_t hash(std::string_view s) { return std::hash<std::string_view>{}(s); }
  static uint32_t tag(size_t h) { return static_cast<uint32_t>(static_cast<uint64_t>(h) >> 32); }
  std::vector<Slot> slots_;
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
      if (s.key != kEmpty)
        put(static_cast<int32_t>(s.key >> 32), static_cast<int32_t>(s.key & 0xFFFFFFFF), s.merge);
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
