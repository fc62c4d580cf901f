// The Gemma forward pass (docs/spec/architecture.md §2), for every generation, driven by ModelConfig.
// All tokens of all sequences in the batch go through each matrix product together; attention
// runs per sequence against its own KV cache.
#include <algorithm>
#include <cstring>

#include "model/model.h"

namespace gemma {

ForwardBuffers::ForwardBuffers(const ModelConfig& c, int max_tok) : max_tokens(max_tok) {
  const size_t t = static_cast<size_t>(max_tok);
  x.resize(t * static_cast<size_t>(c.hidden));
  h.resize(x.size());
  q.resize(t * static_cast<size_t>(c.q_width()));
  k.resize(t * static_cast<size_t>(c.kv_width()));
  v.resize(k.size());
  gate.resize(t * static_cast<size_t>(std::max(c.ffn, c.hidden)));  // also the final norm's output
  up.resize(t * static_cast<size_t>(c.ffn));
  positions.resize(t);
}

uint64_t ForwardBuffers::bytes(const ModelConfig& c, int max_tokens) {
  const uint64_t floats = 2 * static_cast<uint64_t>(c.hidden) + static_cast<uint64_t>(c.q_width()) +
                          2 * static_cast<uint64_t>(c.kv_width()) + static_cast<uint64_t>(std::max(c.ffn, c.hidden)) +
                          static_cast<uint64_t>(c.ffn);
  return static_cast<uint64_t>(max_tokens) * (floats * sizeof(float) + sizeof(int32_t));
}

void Model::layer(int l, std::span<const SequenceChunk> batch, int64_t T, Backend& be, ForwardBuffers& b) const {
  const ModelConfig& c = config_;
  const LayerConfig& lc = c.layers[static_cast<size_t>(l)];
  const LayerWeights& w = weights_.layers[static_cast<size_t>(l)];
  const int64_t D = c.hidden;

  // Attention block: h = norm(x); q, k, v = h·W; QK-norm + RoPE; cache; attend; project.
  be.rms_norm(b.x.data(), w.attn_norm, T, D, c.rms_eps, b.h.data());
  const WeightMatrix* qkv[3] = {&w.q, &w.k, &w.v};
  float* qkv_out[3] = {b.q.data(), b.k.data(), b.v.data()};
  be.matmul_many(qkv, b.h.data(), T, qkv_out);
  be.norm_rope(b.q.data(), T, c.n_heads, c.head_dim, w.q_norm, c.rms_eps, b.positions.data(), lc.rope_base,
               lc.rope_scale);
  be.norm_rope(b.k.data(), T, c.n_kv_heads, c.head_dim, w.k_norm, c.rms_eps, b.positions.data(), lc.rope_base,
               lc.rope_scale);
  int64_t t0 = 0;
  for (const SequenceChunk& s : batch) {
    KvCache::Layer& cache = s.cache->layer(l);
    const int64_t n = s.size(c.hidden);
    const int64_t kvw = c.kv_width();
    const DType kv_type = s.cache->type();
    const int64_t row = kvw * dtype_info(kv_type).block_bytes;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t slot = b.positions[static_cast<size_t>(t0 + i)] % cache.capacity;
      be.store(b.k.data() + (t0 + i) * kvw, cache.k + slot * row, kv_type, kvw);
      be.store(b.v.data() + (t0 + i) * kvw, cache.v + slot * row, kv_type, kvw);
    }
    AttentionArgs a;
    a.q = b.q.data() + t0 * c.q_width();
    a.out = b.q.data() + t0 * c.q_width();  // each (token, head) output replaces its own query
    a.positions = b.positions.data() + t0;
    a.n_tokens = n;
    a.n_heads = c.n_heads;
    a.n_kv_heads = c.n_kv_heads;
    a.head_dim = c.head_dim;
    a.k_cache = cache.k;
    a.v_cache = cache.v;
    a.kv_type = kv_type;
    a.capacity = cache.capacity;
    a.window = lc.sliding ? c.sliding_window : 0;
    a.scale = c.query_scale;
    a.softcap = c.attn_softcap;
    a.bidirectional = s.bidirectional;
    be.attention(a);
    t0 += n;
  }
  be.matmul(w.o, b.q.data(), T, b.h.data());
  be.add_norm(b.x.data(), b.h.data(), w.post_attn_norm, T, D, c.rms_eps);  // x += post_norm(attn)

  // Feed-forward block: h = norm(x); x += post_norm(down(gelu(gate·h) * up·h)).
  be.rms_norm(b.x.data(), w.ffn_norm, T, D, c.rms_eps, b.h.data());
  const WeightMatrix* gu[2] = {&w.gate, &w.up};
  float* gu_out[2] = {b.gate.data(), b.up.data()};
  be.matmul_many(gu, b.h.data(), T, gu_out);
  be.gelu_mul(b.gate.data(), b.up.data(), T * c.ffn);
  be.matmul(w.down, b.gate.data(), T, b.h.data());
  be.add_norm(b.x.data(), b.h.data(), w.post_ffn_norm, T, D, c.rms_eps);
}

Status Model::forward(std::span<const SequenceChunk> batch, Backend& be, ForwardBuffers& b,
                      std::vector<float>& logits) const {
  const ModelConfig& c = config_;
  int64_t T = 0;
  for (const SequenceChunk& s : batch) {
    const int64_t n = s.size(c.hidden);
    if (n == 0) return invalid_argument("empty sequence chunk");
    if (!s.embeddings.empty() && s.embeddings.size() % static_cast<size_t>(c.hidden) != 0)
      return invalid_argument("chunk embeddings of {} floats are not whole rows of {}", s.embeddings.size(), c.hidden);
    if (s.cache->n_past() + n > s.cache->n_ctx())
      return resource_exhausted("context is full: {} tokens already, {} more, context size {}", s.cache->n_past(), n,
                                s.cache->n_ctx());
    if (T + n > b.max_tokens)
      return internal_error("batch of more than {} tokens exceeds the buffer size", b.max_tokens);
    for (const PositionSpan& sp : s.bidirectional)
      if (sp.begin < 0 || sp.end <= sp.begin || sp.end > s.cache->n_past() + n)
        return invalid_argument("bidirectional span [{}, {}) reaches past the chunk's last position {}", sp.begin,
                                sp.end, s.cache->n_past() + n - 1);
    if (s.embeddings.empty())
      for (int32_t id : s.tokens)
        if (id < 0 || id >= c.vocab_size)
          return invalid_argument("token id {} is outside the vocabulary (0..{})", id, c.vocab_size - 1);
    for (int64_t i = 0; i < n; ++i)
      b.positions[static_cast<size_t>(T + i)] = s.cache->n_past() + static_cast<int32_t>(i);
    T += n;
  }

  // Inputs: scaled token embeddings, or the chunk's own embeddings as given.
  int64_t t0 = 0;
  for (const SequenceChunk& s : batch) {
    const int64_t n = s.size(c.hidden);
    float* x = b.x.data() + t0 * c.hidden;
    if (s.embeddings.empty()) be.embed(weights_.embedding, s.tokens, c.embed_scale, x);
    else std::memcpy(x, s.embeddings.data(), s.embeddings.size() * sizeof(float));
    t0 += n;
  }
  for (int l = 0; l < c.n_layers; ++l) layer(l, batch, T, be, b);

  // Final norm and the tied output projection, only for the rows that want logits.
  const int64_t D = c.hidden;
  int64_t rows = 0;
  t0 = 0;
  for (const SequenceChunk& s : batch) {
    const int64_t n = s.size(c.hidden);
    const int64_t first = t0 + n - std::clamp<int64_t>(s.n_logits, 0, n);
    for (int64_t t = first; t < t0 + n; ++t, ++rows)
      std::memcpy(b.h.data() + rows * D, b.x.data() + t * D, static_cast<size_t>(D) * sizeof(float));
    t0 += n;
  }
  for (const SequenceChunk& s : batch) s.cache->advance(static_cast<int>(s.size(c.hidden)));
  if (rows == 0) return {};  // prefill chunks that want no logits (the middle of a long prompt)
  be.rms_norm(b.h.data(), weights_.final_norm, rows, D, c.rms_eps, b.gate.data());
  const size_t base = logits.size();
  logits.resize(base + static_cast<size_t>(rows) * static_cast<size_t>(c.vocab_size));
  be.matmul(weights_.embedding, b.gate.data(), rows, logits.data() + base);
  if (c.final_softcap > 0) be.softcap(logits.data() + base, rows * c.vocab_size, c.final_softcap);
  return {};
}

int Model::n_vocab_out() const {
  if (tokenizer_ && tokenizer_->vocab_size() < config_.vocab_size) return tokenizer_->vocab_size();
  return config_.vocab_size;
}

}  // namespace gemma
