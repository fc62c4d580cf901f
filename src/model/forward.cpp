// The Gemma forward pass (docs/spec/architecture.md §2), for every generation, driven by ModelConfig.
// All tokens of all sequences in the batch go through each matrix product together; attention
// runs per sequence against its own KV cache.
#include <algorithm>
#include <array>
#include <cstring>

#include "model/model.h"

namespace gemma {

namespace {
// Floats per token of the activation arrays, in the order create() lays them out: x, h, q, k, v,
// gate (also the final norm's output), up. Each array is rounded up to whole 64-byte lines.
std::array<int64_t, 7> floats_per_token(const ModelConfig& c) {
  return {c.hidden, c.hidden, c.q_width(), c.kv_width(), c.kv_width(), std::max(c.ffn, c.hidden), c.ffn};
}
uint64_t array_bytes(int64_t per_token, int max_tokens) {
  return (static_cast<uint64_t>(per_token) * static_cast<uint64_t>(max_tokens) * sizeof(float) + 63) / 64 * 64;
}
}  // namespace

Result<ForwardBuffers> ForwardBuffers::create(Backend& be, const ModelConfig& c, int max_tokens) {
  if (max_tokens <= 0) return invalid_argument("a forward pass of {} tokens", max_tokens);
  ForwardBuffers b;
  b.max_tokens = max_tokens;
  GE_ASSIGN(b.activations_, be.allocate(bytes(c, max_tokens), BufferUse::kActivations));
  // One allocation cut into the arrays.
  float** arrays[7] = {&b.x, &b.h, &b.q, &b.k, &b.v, &b.gate, &b.up};
  uint8_t* p = b.activations_.as<uint8_t>();
  const auto sizes = floats_per_token(c);
  for (size_t i = 0; i < sizes.size(); ++i) {
    *arrays[i] = reinterpret_cast<float*>(p);
    p += array_bytes(sizes[i], max_tokens);
  }
  b.positions.resize(static_cast<size_t>(max_tokens));
  GE_TRY(b.reserve_logits(be, c, 1));
  return b;
}

Status ForwardBuffers::reserve_logits(Backend& be, const ModelConfig& c, int64_t rows) {
  if (rows <= logit_rows) return {};
  GE_ASSIGN(logits_, be.allocate(static_cast<uint64_t>(rows) * static_cast<uint64_t>(c.vocab_size) * sizeof(float),
                                 BufferUse::kLogits));
  logits = logits_.as<float>();
  logit_rows = rows;
  return {};
}

uint64_t ForwardBuffers::bytes(const ModelConfig& c, int max_tokens) {
  uint64_t total = 0;
  for (int64_t per_token : floats_per_token(c)) total += array_bytes(per_token, max_tokens);
  return total;
}

Status Model::layer(int l, std::span<const SequenceChunk> batch, int64_t T, Backend& be, ForwardBuffers& b) const {
  const ModelConfig& c = config_;
  const LayerConfig& lc = c.layers[static_cast<size_t>(l)];
  const LayerWeights& w = weights_.layers[static_cast<size_t>(l)];
  const int64_t D = c.hidden;

  // Attention block: h = norm(x); q, k, v = h·W; QK-norm + RoPE; cache; attend; project.
  GE_TRY(be.rms_norm(b.x, w.attn_norm, T, D, c.rms_eps, b.h));
  const WeightMatrix* qkv[3] = {&w.q, &w.k, &w.v};
  float* qkv_out[3] = {b.q, b.k, b.v};
  GE_TRY(be.matmul_many(qkv, b.h, T, qkv_out));
  GE_TRY(be.norm_rope(b.q, T, c.n_heads, c.head_dim, w.q_norm, c.rms_eps, b.positions.data(), lc.rope_base,
                      lc.rope_scale));
  GE_TRY(be.norm_rope(b.k, T, c.n_kv_heads, c.head_dim, w.k_norm, c.rms_eps, b.positions.data(), lc.rope_base,
                      lc.rope_scale));
  // Every sequence's new K/V rows into its own cache, then every sequence's queries over it, each
  // in one call for the whole batch.
  std::vector<SequenceKv>& seqs = b.sequences;  // sized by forward(), refilled per layer
  int64_t t0 = 0;
  for (size_t i = 0; i < batch.size(); ++i) {
    KvCache::Layer& cache = batch[i].cache->layer(l);
    const int64_t n = batch[i].size(c.hidden);
    seqs[i] = {t0, n, cache.k, cache.v, cache.capacity, batch[i].bidirectional};
    t0 += n;
  }
  BatchAttention a;
  a.q = b.q;
  a.out = b.q;  // each (token, head) output replaces its own query
  a.k = b.k;
  a.v = b.v;
  a.positions = b.positions.data();
  a.n_heads = c.n_heads;
  a.n_kv_heads = c.n_kv_heads;
  a.head_dim = c.head_dim;
  a.kv_type = batch[0].cache->type();
  a.window = lc.sliding ? c.sliding_window : 0;
  a.scale = c.query_scale;
  a.softcap = c.attn_softcap;
  a.sequences = seqs;
  GE_TRY(be.store_kv(a));
  GE_TRY(be.attention(a));
  GE_TRY(be.matmul(w.o, b.q, T, b.h));
  GE_TRY(be.add_norm(b.x, b.h, w.post_attn_norm, T, D, c.rms_eps));  // x += post_norm(attn)

  // Feed-forward block: h = norm(x); x += post_norm(down(gelu(gate·h) * up·h)).
  GE_TRY(be.rms_norm(b.x, w.ffn_norm, T, D, c.rms_eps, b.h));
  const WeightMatrix* gu[2] = {&w.gate, &w.up};
  float* gu_out[2] = {b.gate, b.up};
  GE_TRY(be.matmul_many(gu, b.h, T, gu_out));
  GE_TRY(be.gelu_mul(b.gate, b.up, T * c.ffn));
  GE_TRY(be.matmul(w.down, b.gate, T, b.h));
  return be.add_norm(b.x, b.h, w.post_ffn_norm, T, D, c.rms_eps);
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
    if (s.cache->type() != batch[0].cache->type())
      return invalid_argument("the sequences of one batch must share a KV cache type");
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
    float* x = b.x + t0 * c.hidden;
    if (s.embeddings.empty()) GE_TRY(be.embed(weights_.embedding, s.tokens, c.embed_scale, x));
    else GE_TRY(be.to_device(x, s.embeddings.data(), s.embeddings.size() * sizeof(float)));
    t0 += n;
  }
  b.sequences.resize(batch.size());
  for (int l = 0; l < c.n_layers; ++l) GE_TRY(layer(l, batch, T, be, b));

  // Final norm and the tied output projection, only for the rows that want logits.
  const int64_t D = c.hidden;
  int64_t rows = 0;
  t0 = 0;
  for (const SequenceChunk& s : batch) {
    const int64_t n = s.size(c.hidden);
    const int64_t first = t0 + n - std::clamp<int64_t>(s.n_logits, 0, n);
    for (int64_t t = first; t < t0 + n; ++t, ++rows)
      GE_TRY(be.copy(b.h + rows * D, b.x + t * D, static_cast<uint64_t>(D) * sizeof(float)));
    t0 += n;
  }
  for (const SequenceChunk& s : batch) s.cache->advance(static_cast<int>(s.size(c.hidden)));
  if (rows == 0) return {};  // prefill chunks that want no logits (the middle of a long prompt)
  GE_TRY(b.reserve_logits(be, c, rows));
  GE_TRY(be.rms_norm(b.h, weights_.final_norm, rows, D, c.rms_eps, b.gate));
  GE_TRY(be.matmul(weights_.embedding, b.gate, rows, b.logits));
  if (c.final_softcap > 0) GE_TRY(be.softcap(b.logits, rows * c.vocab_size, c.final_softcap));
  const size_t base = logits.size();
  logits.resize(base + static_cast<size_t>(rows) * static_cast<size_t>(c.vocab_size));
  return be.to_host(logits.data() + base, b.logits, static_cast<uint64_t>(rows) * c.vocab_size * sizeof(float));
}

int Model::n_vocab_out() const {
  if (tokenizer_ && tokenizer_->vocab_size() < config_.vocab_size) return tokenizer_->vocab_size();
  return config_.vocab_size;
}

}  // namespace gemma
