// HBM bandwidth probe for the CUDA benchmarks (scripts/gpu_check.sh): the device's achievable
// memory bandwidth, against which batch-1 decode is reported as a share. Two measurements over
// buffers far larger than L2 (default 4 GiB): a device-to-device copy (bytes read + bytes written
// per second) and a read-only reduction (bytes read per second: what a matrix-vector product
// streaming its weights needs). Each is the median and best of 20 timed runs after 3 warm-ups,
// timed with CUDA events. Prints one JSON object.
//   nvcc -O3 -arch=sm_90 scripts/hbm_probe.cu -o hbm_probe && ./hbm_probe [GiB]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime.h>

#define CHECK(x)                                                               \
  do {                                                                         \
    cudaError_t e_ = (x);                                                      \
    if (e_ != cudaSuccess) {                                                   \
      std::fprintf(stderr, "hbm_probe: %s: %s\n", #x, cudaGetErrorString(e_)); \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

// Grid-stride read of n float4s with independent loads in flight; one partial sum per block so
// the compiler cannot drop the loads.
__global__ void read_kernel(const float4* __restrict__ p, size_t n, float* __restrict__ out) {
  float s = 0;
  const size_t stride = static_cast<size_t>(gridDim.x) * blockDim.x;
  size_t i = static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  for (; i + 3 * stride < n; i += 4 * stride) {
    const float4 a = __ldcs(p + i), b = __ldcs(p + i + stride), c = __ldcs(p + i + 2 * stride),
                 d = __ldcs(p + i + 3 * stride);
    s += a.x + a.y + a.z + a.w + b.x + b.y + b.z + b.w + c.x + c.y + c.z + c.w + d.x + d.y + d.z + d.w;
  }
  for (; i < n; i += stride) {
    const float4 a = __ldcs(p + i);
    s += a.x + a.y + a.z + a.w;
  }
  for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
  if (threadIdx.x % 32 == 0) atomicAdd(out + blockIdx.x, s);
}

template <typename Fn>
void timed(Fn fn, double bytes, const char* name, bool last) {
  cudaEvent_t a, b;
  CHECK(cudaEventCreate(&a));
  CHECK(cudaEventCreate(&b));
  for (int i = 0; i < 3; ++i) fn();
  CHECK(cudaDeviceSynchronize());
  std::vector<double> gbs;
  for (int i = 0; i < 20; ++i) {
    CHECK(cudaEventRecord(a));
    fn();
    CHECK(cudaEventRecord(b));
    CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CHECK(cudaEventElapsedTime(&ms, a, b));
    gbs.push_back(bytes / (ms * 1e-3) / 1e9);
  }
  std::sort(gbs.begin(), gbs.end());
  std::printf("  \"%s\": {\"median_gb_s\": %.1f, \"best_gb_s\": %.1f}%s\n", name, gbs[gbs.size() / 2], gbs.back(),
              last ? "" : ",");
}

int main(int argc, char** argv) {
  const double gib = argc > 1 ? std::atof(argv[1]) : 4.0;
  const size_t bytes = static_cast<size_t>(gib * (1u << 30)) / 64 * 64;
  cudaDeviceProp prop{};
  CHECK(cudaGetDeviceProperties(&prop, 0));
  void *src = nullptr, *dst = nullptr;
  float* partial = nullptr;
  CHECK(cudaMalloc(&src, bytes));
  CHECK(cudaMalloc(&dst, bytes));
  CHECK(cudaMemset(src, 0, bytes));
  const int blocks = prop.multiProcessorCount * 8;
  CHECK(cudaMalloc(&partial, blocks * sizeof(float)));
  std::printf("{\n  \"device\": \"%s\",\n  \"sm\": %d%d,\n  \"buffer_bytes\": %zu,\n", prop.name, prop.major,
              prop.minor, bytes);
  timed([&] { CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToDevice)); }, 2.0 * bytes, "d2d_copy_read_plus_write",
        false);
  timed(
      [&] {
        read_kernel<<<blocks, 256>>>(static_cast<const float4*>(src), bytes / 16, partial);
        CHECK(cudaGetLastError());
      },
      1.0 * bytes, "read_only_reduction", true);
  std::printf("}\n");
  return 0;
}
