#include "kernels/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/dequant.h"
#include "util/half.h"

namespace gemma {

Status cpu_supports(DType type, int64_t rows, int64_t cols) {
  if (!cpu::matmul_supported(type))
    return unsupported("type {} is not supported for weight matrices", dtype_name(type));
  if (cpu::uses_q8a(type) && cols % 32 != 0)
    return unsupported("type {} needs a multiple of 32 columns, has {}", dtype_name(type), cols);
  if (rows < 0 || cols < 0) return invalid_argument("a weight matrix of {} x {}", rows, cols);
  return {};
}

CpuBackend::CpuBackend(int n_threads, CpuOptions options)
    : pool_(n_threads), isa_(&cpu::select_isa()), options_(options) {}

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

void CpuBackend::matmul(const WeightMatrix& w, const float* x, int64_t n, float* y) {
  const WeightMatrix* ws[1] = {&w};
  float* ys[1] = {y};
  matmul_many(ws, x, n, ys);
}

void CpuBackend::matmul_many(std::span<const WeightMatrix* const> ws, const float* x, int64_t n,
                             std::span<float* const> ys) {
  // All matrices share the input. prepare_input runs again for every matrix that takes the Q8A
  // form (q, k and v each requantize the same input into the same buffer); all read the last one.
  const int64_t cols = ws[0]->cols;
  const void* xq = nullptr;
  const bool precise = options_.precise;
  for (const WeightMatrix* w : ws)
    if (cpu::uses_q8a(w->type) && !precise) xq = prepare_input(w->type, x, n, cols);
  struct Job {
    cpu::RowsKernel kernel;
    const WeightMatrix* w;
    const void* x;
    float* y;
  };
  Job jobs[8];
  const size_t n_jobs = ws.size();
  for (size_t i = 0; i < n_jobs; ++i) {
    const WeightMatrix* w = ws[i];
    const bool q8a = cpu::uses_q8a(w->type) && !precise;
    cpu::RowsKernel k = q8a || !cpu::uses_q8a(w->type) ? isa_->rows[static_cast<int>(w->type)] : isa_->rows_dequantized;
    if (precise && !cpu::uses_q8a(w->type) && isa_->rows_exact[static_cast<int>(w->type)])
      k = isa_->rows_exact[static_cast<int>(w->type)];
    if (!k) k = cpu::isa_generic().rows[static_cast<int>(w->type)];
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
}

void CpuBackend::embed(const WeightMatrix& table, std::span<const int32_t> ids, float scale, float* out) {
  const int64_t d = table.cols;
  parallel_for(static_cast<int64_t>(ids.size()), 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* o = out + t * d;
      dequantize_row(table.type, table.row(ids[static_cast<size_t>(t)]), o, d);
      for (int64_t c = 0; c < d; ++c) o[c] *= scale;
      if (table.row_scales)
        for (int64_t c = 0; c < d; ++c) o[c] *= table.row_scales[ids[static_cast<size_t>(t)]];
    }
  });
}

namespace {
inline float inv_rms(const float* x, int64_t dim, float eps) {
  float ss = 0;
  for (int64_t c = 0; c < dim; ++c) ss += x[c] * x[c];
  return 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
}
}  // namespace

void CpuBackend::rms_norm(const float* x, const float* w, int64_t n_rows, int64_t dim, float eps, float* out) {
  parallel_for(n_rows, 8, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const float* xt = x + t * dim;
      float* ot = out + t * dim;
      const float r = inv_rms(xt, dim, eps);
      for (int64_t c = 0; c < dim; ++c) ot[c] = xt[c] * r * w[c];
    }
  });
}

void CpuBackend::add_norm(float* x, const float* y, const float* w, int64_t n_rows, int64_t dim, float eps) {
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
}

void CpuBackend::gelu_mul(float* g, const float* u, int64_t n) {
  const auto kernel = isa_->gelu_mul;
  parallel_for(n, 4096, [&](int64_t b, int64_t e) { kernel(g + b, u + b, e - b); });
}

void CpuBackend::norm_rope(float* x, int64_t n_tokens, int n_heads, int head_dim, const float* norm_w, float eps,
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
}

void CpuBackend::attention(const AttentionArgs& a) {
  const int group = a.n_heads / a.n_kv_heads;
  const int hd = a.head_dim;
  const cpu::AttentionKernel kernel = hd % 8 == 0 ? isa_->attention : cpu::isa_generic().attention;
  const int64_t units = a.n_tokens * a.n_kv_heads;
  auto key_range = [&](int64_t t) { return a.key_range(a.positions[t]); };
  auto finish = [&](int64_t t, int g, const float* l, const float* acc) {
    for (int h = 0; h < group; ++h) {
      float* out = a.out + (t * a.n_heads + g * group + h) * hd;
      const float inv = 1.0f / l[h];
      for (int c = 0; c < hd; ++c) out[c] = acc[h * hd + c] * inv;
    }
  };
  const int nt = pool_.size();
  int64_t longest = 0;
  for (int64_t t = 0; t < a.n_tokens; ++t) longest = std::max(longest, key_range(t).second - key_range(t).first + 1);
  // Enough (token, KV group) units for every thread, or short ranges: one unit per task.
  // Units are dealt round-robin: under the causal mask later tokens see more keys, so contiguous
  // ranges would give the last thread most of the work.
  if (units >= 2 * nt || longest < 512 || nt == 1) {
    pool_.run([&](int ti, int n) {
      std::vector<float> m(static_cast<size_t>(group)), l(m.size()), acc(static_cast<size_t>(group * hd));
      for (int64_t u = ti; u < units; u += n) {
        const int64_t t = u / a.n_kv_heads;
        const int g = static_cast<int>(u % a.n_kv_heads);
        auto [j0, j1] = key_range(t);
        kernel(a, t, g, j0, j1, m.data(), l.data(), acc.data());
        finish(t, g, l.data(), acc.data());
      }
    });
    return;
  }
  // Decode over a long context: split each unit's keys across the threads (flash-decoding), then
  // merge the partial softmaxes: m = max m_i, l = Σ l_i e^(m_i - m), acc = Σ acc_i e^(m_i - m).
  const int64_t stride = group * (hd + 2);
  std::vector<float> part(static_cast<size_t>(units * nt * stride));
  pool_.run([&](int ti, int n) {
    for (int64_t u = 0; u < units; ++u) {
      const int64_t t = u / a.n_kv_heads;
      auto [j0, j1] = key_range(t);
      auto [b, e] = ThreadPool::split(j1 - j0 + 1, ti, n);
      float* p = part.data() + (u * nt + ti) * stride;
      if (b >= e) {
        for (int h = 0; h < group; ++h) p[h] = -INFINITY, p[group + h] = 0;
        continue;
      }
      kernel(a, t, static_cast<int>(u % a.n_kv_heads), j0 + b, j0 + e - 1, p, p + group, p + 2 * group);
    }
  });
  std::vector<float> l(static_cast<size_t>(group)), acc(static_cast<size_t>(group * hd));
  for (int64_t u = 0; u < units; ++u) {
    const float* p0 = part.data() + u * nt * stride;
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
    finish(u / a.n_kv_heads, static_cast<int>(u % a.n_kv_heads), l.data(), acc.data());
  }
}

void CpuBackend::store(const float* src, void* dst, DType type, int64_t n) {
  if (type == DType::F16) {
    auto* d = static_cast<uint16_t*>(dst);
    for (int64_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
  } else {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  }
}

void CpuBackend::softcap(float* x, int64_t n, float cap) {
  parallel_for(n, 1 << 14, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) x[i] = cap * std::tanh(x[i] / cap);
  });
}

}  // namespace gemma
