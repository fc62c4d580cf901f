#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include <sys/mman.h>

#include "kernels/dequant.h"
#include "kernels/quantize.h"
#include "util/half.h"

namespace gemma {

Status cpu_supports(DType type, int64_t rows, int64_t cols) {
  if (!cpu::matmul_supported(type))
    return unsupported("type {} is not supported for weight matrices", dtype_name(type));
  if (cpu::uses_q8a(type) && cols % 32 != 0)
    return unsupported("type {} needs a multiple of 32 columns, has {}", dtype_name(type), cols);
  if (rows < 0 || cols < 0) return invalid_argument("a weight matrix of {} x {}", rows, cols);
  if (cols % dtype_info(type).block_elems != 0)
    return unsupported("type {} stores rows in blocks of {}; a row of {} is not whole blocks", dtype_name(type),
                       dtype_info(type).block_elems, cols);
  return {};
}

CpuBackend::CpuBackend(int n_threads, CpuOptions options)
    : pool_(n_threads), isa_(options.isa ? options.isa : &cpu::select_isa()), options_(options) {}

Result<DeviceBuffer> CpuBackend::allocate(uint64_t bytes, BufferUse use) {
  if (bytes == 0) return DeviceBuffer();
  // Reserved address space, zero pages on first touch: a KV cache or logits buffer sized for the
  // longest context costs memory only as it fills.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    const char* what = use == BufferUse::kKvCache  ? "the KV cache"
                       : use == BufferUse::kLogits ? "logits"
                                                   : "activations";
    return resource_exhausted("cannot reserve {} bytes for {}", bytes, what);
  }
  return DeviceBuffer(p, bytes, [](void* q, uint64_t n) { munmap(q, n); });
}

Status CpuBackend::to_device(void* dst, const void* src, uint64_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
  return {};
}
Status CpuBackend::to_host(void* dst, const void* src, uint64_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
  return {};
}
Status CpuBackend::copy(void* dst, const void* src, uint64_t bytes) {
  if (bytes) std::memmove(dst, src, bytes);
  return {};
}

template <typename Fn>
void CpuBackend::parallel_for(int64_t n, int64_t min_per_thread, Fn&& fn) {
  if (pool_.size() == 1 || n < 2 * min_per_thread) {
    fn(int64_t{0}, n);
    return;
  }
  pool_.run([&](int i, int nt) {
    auto [b, e] = ThreadPool::split(n, i, nt);
    if (b < e) fn(b, e);
  });
}

const void* CpuBackend::prepare_input(DType type, const float* x, int64_t n, int64_t cols) {
  if (!cpu::uses_q8a(type)) return x;
  const int64_t nb = cols / 32;
  q8a_.resize(static_cast<size_t>(n * nb));
  auto quantize = isa_->quantize_q8a;
  cpu::BlockQ8A* out = q8a_.data();
  parallel_for(n, 4, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) quantize(x + t * cols, out + t * nb, cols);
  });
  return out;
}

Status CpuBackend::matmul(const WeightMatrix& w, const float* x, int64_t n, float* y) {
  const WeightMatrix* ws[1] = {&w};
  float* ys[1] = {y};
  return matmul_many(ws, x, n, ys);
}

Status CpuBackend::matmul_many(std::span<const WeightMatrix* const> ws, const float* x, int64_t n,
                               std::span<float* const> ys) {
  constexpr size_t kMaxJobs = 8;
  if (ws.empty() || ws.size() != ys.size() || ws.size() > kMaxJobs)
    return internal_error("matmul_many of {} matrices into {} outputs (1..{})", ws.size(), ys.size(), kMaxJobs);
  for (const WeightMatrix* w : ws) {
    GE_TRY(supports(w->type, w->rows, w->cols));
    if (w->cols != ws[0]->cols)
      return internal_error("matmul_many over matrices of {} and {} columns", ws[0]->cols, w->cols);
  }
  if (n <= 0) return {};
  // All matrices share the input: it is quantized to Q8A blocks once, for every matrix that takes
  // that form (q, k and v of a block-quantized checkpoint read the same copy).
  const int64_t cols = ws[0]->cols;
  const void* xq = nullptr;
  const bool precise = options_.precise;
  for (const WeightMatrix* w : ws)
    if (cpu::uses_q8a(w->type) && !precise) {
      xq = prepare_input(w->type, x, n, cols);
      break;
    }
  struct Job {
    cpu::RowsKernel kernel;
    const WeightMatrix* w;
    const void* x;
    float* y;
  };
  Job jobs[kMaxJobs];
  const size_t n_jobs = ws.size();
  for (size_t i = 0; i < n_jobs; ++i) {
    const WeightMatrix* w = ws[i];
    const bool q8a = cpu::uses_q8a(w->type) && !precise;
    cpu::RowsKernel k = q8a || !cpu::uses_q8a(w->type) ? isa_->rows[static_cast<int>(w->type)] : isa_->rows_dequantized;
    if (precise && !cpu::uses_q8a(w->type) && isa_->rows_exact[static_cast<int>(w->type)])
      k = isa_->rows_exact[static_cast<int>(w->type)];
    if (!k) k = cpu::isa_generic().rows[static_cast<int>(w->type)];
    if (!k) return unsupported("no CPU kernel for {} weights", dtype_name(w->type));
    jobs[i] = {k, w, q8a ? xq : static_cast<const void*>(x), ys[i]};
  }
  // Each thread takes the same share of every matrix, so the matrices run in one parallel region.
  pool_.run([&](int ti, int nt) {
    for (size_t i = 0; i < n_jobs; ++i) {
      const Job& j = jobs[i];
      auto [r0, r1] = ThreadPool::split(j.w->rows, ti, nt, 8);
      if (r0 < r1) j.kernel(*j.w, r0, r1, j.x, n, j.y, j.w->rows);
      if (j.w->row_scales)
        for (int64_t t = 0; t < n; ++t)
          for (int64_t r = r0; r < r1; ++r) j.y[t * j.w->rows + r] *= j.w->row_scales[r];
    }
  });
  return {};
}

Status CpuBackend::embed(const WeightMatrix& table, std::span<const int32_t> ids, float scale, float* out) {
  const int64_t d = table.cols;
  for (int32_t id : ids)
    if (id < 0 || id >= table.rows) return invalid_argument("token id {} outside the table's {} rows", id, table.rows);
  parallel_for(static_cast<int64_t>(ids.size()), 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* o = out + t * d;
      dequantize_row(table.type, table.row(ids[static_cast<size_t>(t)]), o, d);
      for (int64_t c = 0; c < d; ++c) o[c] *= scale;
      if (table.row_scales)
        for (int64_t c = 0; c < d; ++c) o[c] *= table.row_scales[ids[static_cast<size_t>(t)]];
    }
  });
  return {};
}

namespace {
inline float inv_rms(const float* x, int64_t dim, float eps) {
  float ss = 0;
  for (int64_t c = 0; c < dim; ++c) ss += x[c] * x[c];
  return 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
}
}  // namespace

Status CpuBackend::rms_norm(const float* x, const float* w, int64_t n_rows, int64_t dim, float eps, float* out) {
  parallel_for(n_rows, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* xt = x + t * dim;
      float* ot = out + t * dim;
      const float r = inv_rms(xt, dim, eps);
      for (int64_t c = 0; c < dim; ++c) ot[c] = xt[c] * r * w[c];
    }
  });
  return {};
}

Status CpuBackend::add_norm(float* x, const float* y, const float* w, int64_t n_rows, int64_t dim, float eps) {
  parallel_for(n_rows, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* xt = x + t * dim;
      const float* yt = y + t * dim;
      if (!w) {
        for (int64_t c = 0; c < dim; ++c) xt[c] += yt[c];
        continue;
      }
      const float r = inv_rms(yt, dim, eps);
      for (int64_t c = 0; c < dim; ++c) xt[c] += yt[c] * r * w[c];
    }
  });
  return {};
}

Status CpuBackend::gelu_mul(float* g, const float* u, int64_t n) {
  const auto kernel = isa_->gelu_mul;
  parallel_for(n, 4096, [&](int64_t b, int64_t e) { kernel(g + b, u + b, e - b); });
  return {};
}

Status CpuBackend::norm_rope(float* x, int64_t n_tokens, int n_heads, int head_dim, const float* norm_w, float eps,
                             const int32_t* positions, float rope_base, float rope_scale) {
  const int half = head_dim / 2;
  // inv_freq as the references compute it in float32: base^(-2k/H), divided by the linear factor.
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int k = 0; k < half; ++k)
    inv_freq[static_cast<size_t>(k)] =
        1.0f / std::pow(rope_base, static_cast<float>(2 * k) / static_cast<float>(head_dim)) / rope_scale;
  parallel_for(n_tokens, 4, [&](int64_t b, int64_t e) {
    std::vector<float> cs(static_cast<size_t>(2 * half));
    for (int64_t t = b; t < e; ++t) {
      const float p = static_cast<float>(positions[t]);
      for (int k = 0; k < half; ++k) {
        const float angle = p * inv_freq[static_cast<size_t>(k)];  // float32 product, as the references
        cs[static_cast<size_t>(k)] = static_cast<float>(std::cos(static_cast<double>(angle)));
        cs[static_cast<size_t>(half + k)] = static_cast<float>(std::sin(static_cast<double>(angle)));
      }
      for (int h = 0; h < n_heads; ++h) {
        float* v = x + (t * n_heads + h) * head_dim;
        if (norm_w) {
          const float r = inv_rms(v, head_dim, eps);
          for (int c = 0; c < head_dim; ++c) v[c] = v[c] * r * norm_w[c];
        }
        for (int k = 0; k < half; ++k) {
          const float c = cs[static_cast<size_t>(k)], s = cs[static_cast<size_t>(half + k)];
          const float x1 = v[k], x2 = v[k + half];
          v[k] = x1 * c - x2 * s;
          v[k + half] = x2 * c + x1 * s;
        }
      }
    }
  });
  return {};
}

Status CpuBackend::store_kv(const BatchAttention& batch) {
  const int64_t kvw = static_cast<int64_t>(batch.n_kv_heads) * batch.head_dim;
  const DType type = batch.kv_type;
  const std::optional<uint64_t> row = row_bytes(type, static_cast<uint64_t>(kvw));
  if (!kv_type_supported(type) || !row) return unsupported("a KV cache of {} rows of {} values", dtype_name(type), kvw);
  auto put = [&](const float* src, uint8_t* dst) {
    switch (type) {
      case DType::F16:
        for (int64_t c = 0; c < kvw; ++c) reinterpret_cast<uint16_t*>(dst)[c] = f32_to_f16(src[c]);
        break;
      case DType::BF16:
        for (int64_t c = 0; c < kvw; ++c) reinterpret_cast<uint16_t*>(dst)[c] = f32_to_bf16(src[c]);
        break;
      case DType::Q8_0: quantize_row(DType::Q8_0, src, dst, kvw); break;
      default: std::memcpy(dst, src, *row);
    }
  };
  for (const SequenceKv& s : batch.sequences)
    for (int64_t i = 0; i < s.n_tokens; ++i) {
      const int64_t r = s.first_row + i;
      const uint64_t slot = static_cast<uint64_t>(batch.positions[r] % s.capacity);
      put(batch.k + r * kvw, static_cast<uint8_t*>(s.k_cache) + slot * *row);
      put(batch.v + r * kvw, static_cast<uint8_t*>(s.v_cache) + slot * *row);
    }
  return {};
}

// Attention work is cut into units of one (sequence, query token, KV group). Whether a unit's keys
// are also split across the threads (flash-decoding: a decode over a long context has too few
// units to occupy them) is decided per sequence from its own shape, never from the rest of the
// batch, so a sequence's result is the same whatever runs beside it.
Status CpuBackend::attention(const BatchAttention& batch) {
  if (batch.n_kv_heads <= 0 || batch.n_heads % batch.n_kv_heads != 0)
    return internal_error("attention with {} heads over {} KV heads", batch.n_heads, batch.n_kv_heads);
  const int group = batch.n_heads / batch.n_kv_heads;
  const int hd = batch.head_dim;
  const int nt = pool_.size();
  const cpu::AttentionKernel kernel = hd % 8 == 0 ? isa_->attention : cpu::isa_generic().attention;
  struct Seq {
    AttentionArgs a;
    bool split;          // keys split across threads
    int64_t first_unit;  // of the whole units (split == false) or of the split ones
  };
  std::vector<Seq> seqs;
  seqs.reserve(batch.sequences.size());
  int64_t whole_units = 0, split_units = 0;
  for (size_t i = 0; i < batch.sequences.size(); ++i) {
    const AttentionArgs a = batch.sequence(i);
    if (a.n_tokens <= 0) continue;
    if (!kv_type_supported(a.kv_type) || (a.kv_type == DType::Q8_0 && hd % 32 != 0))
      return unsupported("a KV cache of {} with head_dim {}", dtype_name(a.kv_type), hd);
    const int64_t units = a.n_tokens * a.n_kv_heads;
    int64_t longest = 0;
    for (int64_t t = 0; t < a.n_tokens; ++t) {
      auto [j0, j1] = a.key_range(a.positions[t]);
      longest = std::max(longest, j1 - j0 + 1);
    }
    // Enough units for every thread, or short ranges: one unit per task.
    const bool split = !(units >= 2 * nt || longest < 512 || nt == 1);
    seqs.push_back({a, split, split ? split_units : whole_units});
    (split ? split_units : whole_units) += units;
  }
  auto finish = [&](const AttentionArgs& a, int64_t t, int g, const float* l, const float* acc) {
    for (int h = 0; h < group; ++h) {
      float* out = a.out + (t * a.n_heads + g * group + h) * hd;
      const float inv = 1.0f / l[h];
      for (int c = 0; c < hd; ++c) out[c] = acc[h * hd + c] * inv;
    }
  };
  // Partial softmaxes of the split units: per thread m[group], l[group], acc[group][hd].
  const int64_t stride = group * (hd + 2);
  std::vector<float> part(static_cast<size_t>(split_units * nt * stride));
  pool_.run([&](int ti, int n) {
    std::vector<float> m(static_cast<size_t>(group)), l(m.size()), acc(static_cast<size_t>(group * hd));
    for (const Seq& s : seqs) {
      const AttentionArgs& a = s.a;
      const int64_t units = a.n_tokens * a.n_kv_heads;
      if (!s.split) {
        // Units are dealt round-robin over the whole batch: under the causal mask later tokens see
        // more keys, so contiguous ranges would give the last thread most of the work.
        const int64_t first = (ti - s.first_unit % n + n) % n;
        for (int64_t u = first; u < units; u += n) {
          const int64_t t = u / a.n_kv_heads;
          const int g = static_cast<int>(u % a.n_kv_heads);
          auto [j0, j1] = a.key_range(a.positions[t]);
          kernel(a, t, g, j0, j1, m.data(), l.data(), acc.data());
          finish(a, t, g, l.data(), acc.data());
        }
        continue;
      }
      for (int64_t u = 0; u < units; ++u) {
        const int64_t t = u / a.n_kv_heads;
        auto [j0, j1] = a.key_range(a.positions[t]);
        auto [b, e] = ThreadPool::split(j1 - j0 + 1, ti, n);
        float* p = part.data() + ((s.first_unit + u) * nt + ti) * stride;
        if (b >= e) {
          for (int h = 0; h < group; ++h) p[h] = -INFINITY, p[group + h] = 0;
          continue;
        }
        kernel(a, t, static_cast<int>(u % a.n_kv_heads), j0 + b, j0 + e - 1, p, p + group, p + 2 * group);
      }
    }
  });
  if (split_units == 0) return {};
  // Merge the partial softmaxes: m = max m_i, l = Σ l_i e^(m_i - m), acc = Σ acc_i e^(m_i - m).
  std::vector<float> l(static_cast<size_t>(group)), acc(static_cast<size_t>(group * hd));
  for (const Seq& s : seqs) {
    if (!s.split) continue;
    const AttentionArgs& a = s.a;
    for (int64_t u = 0; u < a.n_tokens * a.n_kv_heads; ++u) {
      const float* p0 = part.data() + (s.first_unit + u) * nt * stride;
      for (int h = 0; h < group; ++h) {
        float mx = -INFINITY;
        for (int i = 0; i < nt; ++i) mx = std::max(mx, p0[i * stride + h]);
        float lsum = 0;
        std::fill(acc.begin() + h * hd, acc.begin() + (h + 1) * hd, 0.0f);
        for (int i = 0; i < nt; ++i) {
          const float* p = p0 + i * stride;
          if (p[group + h] == 0) continue;
          const float w = std::exp(p[h] - mx);
          lsum += p[group + h] * w;
          const float* pa = p + 2 * group + h * hd;
          for (int c = 0; c < hd; ++c) acc[static_cast<size_t>(h * hd + c)] += pa[c] * w;
        }
        l[static_cast<size_t>(h)] = lsum;
      }
      finish(a, u / a.n_kv_heads, static_cast<int>(u % a.n_kv_heads), l.data(), acc.data());
    }
  }
  return {};
}

Status CpuBackend::softcap(float* x, int64_t n, float cap) {
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] = cap * std::tanh(x[i] / cap);
  });
  return {};
}

// ---- Encoder ops (vision tower). Generic C++, threaded over rows or (head, query block) units;
// the loops are written so the compiler vectorises their innermost dimension.

Status CpuBackend::layer_norm(const float* x, const float* w, const float* b, int64_t n_rows, int64_t dim, float eps,
                              float* out) {
  if (dim <= 0) return internal_error("layer_norm over {} values", dim);
  parallel_for(n_rows, 8, [&](int64_t r0, int64_t r1) {
    for (int64_t t = r0; t < r1; ++t) {
      const float* xt = x + t * dim;
      float* ot = out + t * dim;
      // Two passes in double: the mean and the biased variance (torch's), free of the
      // cancellation a one-pass E[x^2] - E[x]^2 has on rows with a large mean.
      double mean = 0;
      for (int64_t c = 0; c < dim; ++c) mean += xt[c];
      mean /= static_cast<double>(dim);
      double var = 0;
      for (int64_t c = 0; c < dim; ++c) {
        const double d = xt[c] - mean;
        var += d * d;
      }
      var /= static_cast<double>(dim);
      const float m = static_cast<float>(mean);
      const float r = static_cast<float>(1.0 / std::sqrt(var + static_cast<double>(eps)));
      for (int64_t c = 0; c < dim; ++c) ot[c] = (xt[c] - m) * r * w[c] + b[c];
    }
  });
  return {};
}

Status CpuBackend::add_bias(float* x, const float* b, int64_t n_rows, int64_t dim) {
  parallel_for(n_rows, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t t = r0; t < r1; ++t) {
      float* xt = x + t * dim;
      for (int64_t c = 0; c < dim; ++c) xt[c] += b[c];
    }
  });
  return {};
}

Status CpuBackend::gelu(float* x, int64_t n) {
  const auto kernel = isa_->gelu ? isa_->gelu : cpu::isa_generic().gelu;
  parallel_for(n, 4096, [&](int64_t b, int64_t e) { kernel(x + b, e - b); });
  return {};
}

Status CpuBackend::full_attention(const float* q, const float* k, const float* v, int64_t n, int n_heads, int head_dim,
                                  float scale, float* out) {
  if (n <= 0) return {};
  if (n_heads <= 0 || head_dim <= 0) return internal_error("full_attention with {} heads of {}", n_heads, head_dim);
  GE_TRY(supports(DType::F32, n, head_dim));
  GE_TRY(supports(DType::F32, head_dim, n));
  // Flash-style blocks: a thread takes a (head, block of queries) unit, computes the block's
  // scores against all keys with the float32 GEMM (the head's keys read in place as a [n,
  // head_dim] matrix with the row stride of the full width), exponentiates each row (vectorized
  // exp), and multiplies by the head's values transposed to [head_dim, n]. Units, not the 72
  // output rows of one product, are what the threads share: 16 heads x 32 blocks at 4096 patches.
  // 128 queries a block: the keys' and values' packing is shared by more queries than with 64,
  // and the scores (2 MiB at 4096 keys) still mostly stay in L2 between the exp and the product.
  constexpr int64_t kAttnBlock = 128;
  const int64_t width = static_cast<int64_t>(n_heads) * head_dim, hd = head_dim;
  const int64_t block = std::min<int64_t>(n, kAttnBlock);
  const int64_t n_blocks = (n + block - 1) / block, units = n_heads * n_blocks;
  const auto nt = static_cast<size_t>(pool_.size());
  cpu::RowsKernel gemm = isa_->rows[static_cast<int>(DType::F32)];
  if (!gemm) gemm = cpu::isa_generic().rows[static_cast<int>(DType::F32)];
  const auto exp_max_sum = isa_->exp_max_sum ? isa_->exp_max_sum : cpu::isa_generic().exp_max_sum;
  attn_vt_.resize(static_cast<size_t>(width * n));
  attn_q_.resize(nt * static_cast<size_t>(block * hd));
  attn_s_.resize(nt * static_cast<size_t>(block * n));
  attn_o_.resize(nt * static_cast<size_t>(block * hd));
  float* vt = attn_vt_.data();
  // vt[(h * hd + c) * n + j] = v[j * width + h * hd + c], 64 tokens at a time per column range.
  parallel_for(width, 8, [&](int64_t c0, int64_t c1) {
    for (int64_t j0 = 0; j0 < n; j0 += 64)
      for (int64_t c = c0; c < c1; ++c)
        for (int64_t j = j0; j < std::min(n, j0 + 64); ++j) vt[c * n + j] = v[j * width + c];
  });
  std::atomic<int64_t> next{0};
  pool_.run([&](int ti, int) {
    float* qh = attn_q_.data() + static_cast<size_t>(ti) * static_cast<size_t>(block * hd);
    float* sc = attn_s_.data() + static_cast<size_t>(ti) * static_cast<size_t>(block * n);
    float* oh = attn_o_.data() + static_cast<size_t>(ti) * static_cast<size_t>(block * hd);
    for (int64_t u = next.fetch_add(1); u < units; u = next.fetch_add(1)) {
      const int64_t h = u / n_blocks, i0 = u % n_blocks * block, nb = std::min(block, n - i0);
      for (int64_t i = 0; i < nb; ++i)
        for (int64_t c = 0; c < hd; ++c) qh[i * hd + c] = q[(i0 + i) * width + h * hd + c] * scale;
      const WeightMatrix keys{DType::F32, n, hd, reinterpret_cast<const uint8_t*>(k + h * hd),
                              static_cast<uint64_t>(width) * sizeof(float)};
      gemm(keys, 0, n, qh, nb, sc, n);                                             // sc[i][j] = scale * q_i . k_j
      for (int64_t i = 0; i < nb; ++i) qh[i] = 1.0f / exp_max_sum(sc + i * n, n);  // qh is free now
      const WeightMatrix values{DType::F32, hd, n, reinterpret_cast<const uint8_t*>(vt + h * hd * n),
                                static_cast<uint64_t>(n) * sizeof(float)};
      gemm(values, 0, hd, sc, nb, oh, hd);  // oh[i][c] = sum_j e_ij v_jc
      for (int64_t i = 0; i < nb; ++i)
        for (int64_t c = 0; c < hd; ++c) out[(i0 + i) * width + h * hd + c] = oh[i * hd + c] * qh[i];
    }
  });
  return {};
}

Status CpuBackend::avg_pool(const float* x, int side, int64_t dim, int kernel, float* out) {
  if (side <= 0 || kernel <= 0 || side % kernel != 0)
    return internal_error("avg_pool of a {}-wide grid with a kernel of {}", side, kernel);
  const int out_side = side / kernel;
  const float inv = 1.0f / static_cast<float>(kernel * kernel);
  parallel_for(static_cast<int64_t>(out_side) * out_side, 2, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t oy = t / out_side, ox = t % out_side;
      float* o = out + t * dim;
      std::fill(o, o + dim, 0.0f);
      for (int ky = 0; ky < kernel; ++ky)
        for (int kx = 0; kx < kernel; ++kx) {
          const float* xi = x + ((oy * kernel + ky) * side + ox * kernel + kx) * dim;
          for (int64_t c = 0; c < dim; ++c) o[c] += xi[c];
        }
      for (int64_t c = 0; c < dim; ++c) o[c] *= inv;
    }
  });
  return {};
}

}  // namespace gemma
