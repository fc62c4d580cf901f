// Writes GGUF files for tests: valid ones built from scratch, and deliberately broken ones
// (bad magic, truncation, tensors outside the file, wrong types) for the error-path tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gemma::test {

class GgufBuilder {
 public:
  void kv_u32(const std::string& key, uint32_t v);
  void kv_f32(const std::string& key, float v);
  void kv_bool(const std::string& key, bool v);
  void kv_str(const std::string& key, const std::string& v);
  void kv_str_array(const std::string& key, const std::vector<std::string>& v);
  void kv_f32_array(const std::string& key, const std::vector<float>& v);
  void kv_i32_array(const std::string& key, const std::vector<int32_t>& v);
  // ne[0] is the innermost dimension (GGUF order). `data` must be the exact byte size.
  void tensor(const std::string& name, uint32_t ggml_type, std::vector<uint64_t> ne, std::vector<uint8_t> data);
  // Overrides the offset written for the last tensor (to point it outside the file).
  void override_last_offset(uint64_t offset) { tensors_.back().offset_override = offset; }

  std::string bytes(uint32_t version = 3) const;
  void write(const std::string& path) const;

  // A complete tiny Gemma 3 model (random F32 weights; a vocabulary of 266 tokens: 4 specials,
  // 256 byte tokens, the turn markers and CodeGemma's fill-in-the-middle tokens).
  static GgufBuilder tiny_gemma3(uint32_t seed = 1);

 private:
  struct Tensor {
    std::string name;
    uint32_t type;
    std::vector<uint64_t> ne;
    std::vector<uint8_t> data;
    int64_t offset_override = -1;
  };
  std::string kv_;
  uint64_t n_kv_ = 0;
  std::vector<Tensor> tensors_;
};

}  // namespace gemma::test
