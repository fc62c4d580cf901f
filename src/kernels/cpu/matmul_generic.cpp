// Portable matrix-vector / matrix-matrix kernels for every weight type: the reference that the
// ISA-specific kernels are tested against, and the fallback on CPUs without AVX2. Integer sums
// are exact; only the float accumulation order differs from the SIMD versions.
#include <cmath>
#include <cstring>

#include <vector>

#include "kernels/cpu/isa.h"
#include "kernels/dequant.h"
#include "kernels/quant_blocks.h"
#include "util/half.h"

namespace gemma::cpu {

using namespace quant;

namespace {

void quantize_q8a(const float* x, BlockQ8A* y, int64_t n) {
  for (int64_t b = 0; b < n / 32; ++b, x += 32) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const float d = amax / 127.0f;
    const float inv = d > 0 ? 1.0f / d : 0.0f;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      int q = static_cast<int>(std::nearbyint(x[i] * inv));
      y[b].qs[i] = static_cast<int8_t>(q);
      sum += q;
    }
    y[b].d = d;
    y[b].s = d * static_cast<float>(sum);
  }
}

// Σ u[i] * x[i] over 32 elements where u holds unpacked weight values.
inline int isum32(const int* u, const int8_t* x) {
  int s = 0;
  for (int i = 0; i < 32; ++i) s += u[i] * x[i];
  return s;
}

float dot_q8_0(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ8_0*>(w);
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i) {
    int s = 0;
    for (int j = 0; j < 32; ++j) s += b[i].qs[j] * x[i].qs[j];
    sum += f16_to_f32(b[i].d) * x[i].d * static_cast<float>(s);
  }
  return sum;
}

float dot_q4_0(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ4_0*>(w);
  float sum = 0;
  int u[32];
  for (int64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < 16; ++j) u[j] = b[i].qs[j] & 0xF, u[j + 16] = b[i].qs[j] >> 4;
    sum += f16_to_f32(b[i].d) * (x[i].d * static_cast<float>(isum32(u, x[i].qs)) - 8.0f * x[i].s);
  }
  return sum;
}

float dot_q4_0f(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ4_0F*>(w);
  float sum = 0;
  int u[32];
  for (int64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < 16; ++j) u[j] = b[i].qs[j] & 0xF, u[j + 16] = b[i].qs[j] >> 4;
    sum += b[i].d * (x[i].d * static_cast<float>(isum32(u, x[i].qs)) - 8.0f * x[i].s);
  }
  return sum;
}

float dot_q4_1(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ4_1*>(w);
  float sum = 0;
  int u[32];
  for (int64_t i = 0; i < nb; ++i) {
    for (int j = 0; j < 16; ++j) u[j] = b[i].qs[j] & 0xF, u[j + 16] = b[i].qs[j] >> 4;
    sum += f16_to_f32(b[i].d) * x[i].d * static_cast<float>(isum32(u, x[i].qs)) + f16_to_f32(b[i].m) * x[i].s;
  }
  return sum;
}

template <typename Block>
void unpack_q5(const Block& b, int* u) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  for (int j = 0; j < 16; ++j) {
    u[j] = (b.qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    u[j + 16] = (b.qs[j] >> 4) | static_cast<int>(((qh >> (j + 16)) & 1u) << 4);
  }
}

float dot_q5_0(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ5_0*>(w);
  float sum = 0;
  int u[32];
  for (int64_t i = 0; i < nb; ++i) {
    unpack_q5(b[i], u);
    sum += f16_to_f32(b[i].d) * (x[i].d * static_cast<float>(isum32(u, x[i].qs)) - 16.0f * x[i].s);
  }
  return sum;
}

float dot_q5_1(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ5_1*>(w);
  float sum = 0;
  int u[32];
  for (int64_t i = 0; i < nb; ++i) {
    unpack_q5(b[i], u);
    sum += f16_to_f32(b[i].d) * x[i].d * static_cast<float>(isum32(u, x[i].qs)) + f16_to_f32(b[i].m) * x[i].s;
  }
  return sum;
}

// nb counts 32-element activation blocks; a K-quant super-block spans 8 of them.
float dot_q4_k(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ4_K*>(w);
  float sum = 0;
  int u[32];
  for (int64_t i = 0; i < nb / 8; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    for (int sb = 0; sb < 8; ++sb) {
      const uint8_t* q = b[i].qs + 32 * (sb / 2);
      for (int l = 0; l < 32; ++l) u[l] = (sb % 2) ? (q[l] >> 4) : (q[l] & 0xF);
      uint8_t sc, m;
      k_scale_min(sb, b[i].scales, sc, m);
      const BlockQ8A& xb = x[8 * i + sb];
      sum += d * sc * xb.d * static_cast<float>(isum32(u, xb.qs)) - dmin * m * xb.s;
    }
  }
  return sum;
}

float dot_q5_k(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ5_K*>(w);
  float sum = 0;
  int u[32];
  for (int64_t i = 0; i < nb / 8; ++i) {
    const float d = f16_to_f32(b[i].d), dmin = f16_to_f32(b[i].dmin);
    for (int sb = 0; sb < 8; ++sb) {
      const uint8_t* q = b[i].qs + 32 * (sb / 2);
      for (int l = 0; l < 32; ++l) {
        int lo = (sb % 2) ? (q[l] >> 4) : (q[l] & 0xF);
        u[l] = lo | (((b[i].qh[l] >> sb) & 1) << 4);
      }
      uint8_t sc, m;
      k_scale_min(sb, b[i].scales, sc, m);
      const BlockQ8A& xb = x[8 * i + sb];
      sum += d * sc * xb.d * static_cast<float>(isum32(u, xb.qs)) - dmin * m * xb.s;
    }
  }
  return sum;
}

float dot_q6_k(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* b = reinterpret_cast<const BlockQ6_K*>(w);
  float sum = 0;
  for (int64_t i = 0; i < nb / 8; ++i) {
    const float d = f16_to_f32(b[i].d);
    for (int sb = 0; sb < 8; ++sb) {  // 32-element group: half h, quarter k
      const int h = sb / 4, k = sb % 4;
      const uint8_t* ql = b[i].ql + 64 * h + (k % 2) * 32;
      const uint8_t* qh = b[i].qh + 32 * h;
      const BlockQ8A& xb = x[8 * i + sb];
      int s16[2] = {0, 0};
      for (int l = 0; l < 32; ++l) {
        int lo = (k < 2) ? (ql[l] & 0xF) : (ql[l] >> 4);
        int q = (lo | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
        s16[l / 16] += q * xb.qs[l];
      }
      const int8_t* sc = b[i].scales + 8 * h + 2 * k;
      sum += d * xb.d * static_cast<float>(sc[0] * s16[0] + sc[1] * s16[1]);
    }
  }
  return sum;
}

// Plain int8 rows (gemma_pytorch's int8 weights) against Q8A blocks; the backend applies the
// weight's per-row scale afterwards.
float dot_i8(const uint8_t* w, const BlockQ8A* x, int64_t nb) {
  const auto* q = reinterpret_cast<const int8_t*>(w);
  float sum = 0;
  for (int64_t i = 0; i < nb; ++i, q += 32) {
    int s = 0;
    for (int j = 0; j < 32; ++j) s += q[j] * x[i].qs[j];
    sum += x[i].d * static_cast<float>(s);
  }
  return sum;
}

using DotQ = float (*)(const uint8_t*, const BlockQ8A*, int64_t);

template <DotQ dot>
void rows_q(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y, int64_t ldy) {
  const auto* x = static_cast<const BlockQ8A*>(xv);
  const int64_t nb = w.cols / 32;
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t t = 0; t < n; ++t) y[t * ldy + r] = dot(w.row(r), x + t * nb, nb);
}

template <typename Load>
void rows_float(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y, int64_t ldy,
                Load load) {
  const auto* x = static_cast<const float*>(xv);
  for (int64_t r = r0; r < r1; ++r) {
    const uint8_t* row = w.row(r);
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * w.cols;
      float s = 0;
      for (int64_t c = 0; c < w.cols; ++c) s += load(row, c) * xt[c];
      y[t * ldy + r] = s;
    }
  }
}

void rows_f32(const WeightMatrix& w, int64_t r0, int64_t r1, const void* x, int64_t n, float* y, int64_t ldy) {
  rows_float(w, r0, r1, x, n, y, ldy, [](const uint8_t* row, int64_t c) {
    float v;
    std::memcpy(&v, row + 4 * c, 4);
    return v;
  });
}
void rows_f16(const WeightMatrix& w, int64_t r0, int64_t r1, const void* x, int64_t n, float* y, int64_t ldy) {
  rows_float(w, r0, r1, x, n, y, ldy, [](const uint8_t* row, int64_t c) {
    uint16_t h;
    std::memcpy(&h, row + 2 * c, 2);
    return f16_to_f32(h);
  });
}
void rows_bf16(const WeightMatrix& w, int64_t r0, int64_t r1, const void* x, int64_t n, float* y, int64_t ldy) {
  rows_float(w, r0, r1, x, n, y, ldy, [](const uint8_t* row, int64_t c) {
    uint16_t h;
    std::memcpy(&h, row + 2 * c, 2);
    return bf16_to_f32(h);
  });
}

void rows_dequantized(const WeightMatrix& w, int64_t r0, int64_t r1, const void* xv, int64_t n, float* y, int64_t ldy) {
  const auto* x = static_cast<const float*>(xv);
  thread_local std::vector<float> row;
  row.resize(static_cast<size_t>(w.cols));
  for (int64_t r = r0; r < r1; ++r) {
    dequantize_row(w.type, w.row(r), row.data(), w.cols);
    for (int64_t t = 0; t < n; ++t) {
      const float* xt = x + t * w.cols;
      float part[8] = {};  // independent partial sums, so the loop vectorizes
      int64_t c = 0;
      for (; c + 8 <= w.cols; c += 8)
        for (int k = 0; k < 8; ++k) part[k] += row[static_cast<size_t>(c + k)] * xt[c + k];
      float s = 0;
      for (; c < w.cols; ++c) s += row[static_cast<size_t>(c)] * xt[c];
      for (float v : part) s += v;
      y[t * ldy + r] = s;
    }
  }
}

IsaKernels make_generic() {
  IsaKernels k{};
  k.name = "generic";
  k.rows[static_cast<int>(DType::F32)] = rows_f32;
  k.rows[static_cast<int>(DType::F16)] = rows_f16;
  k.rows[static_cast<int>(DType::BF16)] = rows_bf16;
  k.rows[static_cast<int>(DType::Q8_0)] = rows_q<dot_q8_0>;
  k.rows[static_cast<int>(DType::Q4_0)] = rows_q<dot_q4_0>;
  k.rows[static_cast<int>(DType::Q4_1)] = rows_q<dot_q4_1>;
  k.rows[static_cast<int>(DType::Q4_0F)] = rows_q<dot_q4_0f>;
  k.rows[static_cast<int>(DType::Q5_0)] = rows_q<dot_q5_0>;
  k.rows[static_cast<int>(DType::Q5_1)] = rows_q<dot_q5_1>;
  k.rows[static_cast<int>(DType::Q4_K)] = rows_q<dot_q4_k>;
  k.rows[static_cast<int>(DType::Q5_K)] = rows_q<dot_q5_k>;
  k.rows[static_cast<int>(DType::Q6_K)] = rows_q<dot_q6_k>;
  k.rows[static_cast<int>(DType::I8)] = rows_q<dot_i8>;
  k.quantize_q8a = quantize_q8a;
  k.rows_dequantized = rows_dequantized;
  k.attention = attention_generic;
  k.gelu_mul = gelu_mul_generic;
  k.gelu = gelu_generic;
  k.exp_max_sum = exp_max_sum_generic;
  return k;
}

}  // namespace

void gelu_mul_generic(float* g, const float* u, int64_t n) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2/pi)
  for (int64_t i = 0; i < n; ++i) {
    const float z = g[i];
    g[i] = 0.5f * z * (1.0f + std::tanh(kC * (z + 0.044715f * z * z * z))) * u[i];
  }
}

void gelu_generic(float* x, int64_t n) {
  constexpr float kC = 0.7978845608028654f;  // sqrt(2/pi), as torch's tanh approximation
  for (int64_t i = 0; i < n; ++i) {
    const float z = x[i];
    x[i] = 0.5f * z * (1.0f + std::tanh(kC * (z + 0.044715f * z * z * z)));
  }
}

float exp_max_sum_generic(float* s, int64_t n) {
  float mx = s[0];
  for (int64_t j = 1; j < n; ++j) mx = std::max(mx, s[j]);
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
  return sum;
}

const IsaKernels& isa_generic() {
  static const IsaKernels k = make_generic();
  return k;
}

// Plain int8 weights take int8 activations too (an integer dot per 32-element block).
bool uses_q8a(DType t) { return dtype_info(t).quantized || t == DType::I8; }

bool matmul_supported(DType t) { return isa_generic().rows[static_cast<int>(t)] != nullptr; }

}  // namespace gemma::cpu
