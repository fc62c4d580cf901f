#include "support/gguf_builder.h"

#include <cstring>
#include <fstream>
#include <random>

#include <fmt/format.h>

namespace gemma::test {

namespace {
template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof v);
}
void put_str(std::string& s, const std::string& v) {
  put<uint64_t>(s, v.size());
  s += v;
}
}  // namespace

void GgufBuilder::kv_u32(const std::string& k, uint32_t v) {
  put_str(kv_, k), put<uint32_t>(kv_, 4), put(kv_, v), ++n_kv_;
}
void GgufBuilder::kv_f32(const std::string& k, float v) {
  put_str(kv_, k), put<uint32_t>(kv_, 6), put(kv_, v), ++n_kv_;
}
void GgufBuilder::kv_bool(const std::string& k, bool v) {
  put_str(kv_, k), put<uint32_t>(kv_, 7), put<uint8_t>(kv_, v), ++n_kv_;
}
void GgufBuilder::kv_str(const std::string& k, const std::string& v) {
  put_str(kv_, k), put<uint32_t>(kv_, 8), put_str(kv_, v), ++n_kv_;
}
void GgufBuilder::kv_str_array(const std::string& k, const std::vector<std::string>& v) {
  put_str(kv_, k), put<uint32_t>(kv_, 9), put<uint32_t>(kv_, 8), put<uint64_t>(kv_, v.size());
  for (const auto& s : v) put_str(kv_, s);
  ++n_kv_;
}
void GgufBuilder::kv_f32_array(const std::string& k, const std::vector<float>& v) {
  put_str(kv_, k), put<uint32_t>(kv_, 9), put<uint32_t>(kv_, 6), put<uint64_t>(kv_, v.size());
  for (float f : v) put(kv_, f);
  ++n_kv_;
}
void GgufBuilder::kv_i32_array(const std::string& k, const std::vector<int32_t>& v) {
  put_str(kv_, k), put<uint32_t>(kv_, 9), put<uint32_t>(kv_, 5), put<uint64_t>(kv_, v.size());
  for (int32_t x : v) put(kv_, x);
  ++n_kv_;
}

void GgufBuilder::tensor(const std::string& name, uint32_t type, std::vector<uint64_t> ne, std::vector<uint8_t> data) {
  tensors_.push_back({name, type, std::move(ne), std::move(data)});
}

std::string GgufBuilder::bytes(uint32_t version) const {
  std::string s = "GGUF";
  put<uint32_t>(s, version);
  put<uint64_t>(s, tensors_.size());
  put<uint64_t>(s, n_kv_);
  s += kv_;
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_str(s, t.name);
    put<uint32_t>(s, static_cast<uint32_t>(t.ne.size()));
    for (uint64_t d : t.ne) put(s, d);
    put(s, t.type);
    put<uint64_t>(s, t.offset_override >= 0 ? static_cast<uint64_t>(t.offset_override) : offset);
    offset += (t.data.size() + 31) / 32 * 32;
  }
  s.resize((s.size() + 31) / 32 * 32, '\0');
  for (const Tensor& t : tensors_) {
    s.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
    s.resize((s.size() + 31) / 32 * 32, '\0');
  }
  return s;
}

void GgufBuilder::write(const std::string& path) const {
  std::ofstream out(path, std::ios::binary);
  const std::string b = bytes();
  out.write(b.data(), static_cast<std::streamsize>(b.size()));
}

GgufBuilder GgufBuilder::tiny_gemma3(uint32_t seed) {
  const uint32_t D = 32, F = 64, N = 2, K = 1, H = 16, L = 2, V = 266;
  GgufBuilder b;
  b.kv_str("general.architecture", "gemma3");
  b.kv_u32("gemma3.context_length", 128);
  b.kv_u32("gemma3.embedding_length", D);
  b.kv_u32("gemma3.block_count", L);
  b.kv_u32("gemma3.feed_forward_length", F);
  b.kv_u32("gemma3.attention.head_count", N);
  b.kv_u32("gemma3.attention.head_count_kv", K);
  b.kv_u32("gemma3.attention.key_length", H);
  b.kv_u32("gemma3.attention.value_length", H);
  b.kv_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
  b.kv_f32("gemma3.rope.freq_base", 1e6f);
  b.kv_u32("gemma3.attention.sliding_window", 4);
  b.kv_str("tokenizer.ggml.model", "llama");
  std::vector<std::string> tokens = {"<pad>", "<eos>", "<bos>", "<unk>"};
  std::vector<int32_t> types = {3, 3, 3, 2};
  for (int i = 0; i < 256; ++i) tokens.push_back(fmt::format("<0x{:02X}>", i)), types.push_back(6);
  // Turn and CodeGemma fill-in-the-middle tokens (ids 260..265), as in the real vocabularies.
  for (const char* t :
       {"<start_of_turn>", "<end_of_turn>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|file_separator|>"})
    tokens.push_back(t), types.push_back(4);
  b.kv_str_array("tokenizer.ggml.tokens", tokens);
  b.kv_f32_array("tokenizer.ggml.scores", std::vector<float>(tokens.size(), 0.0f));
  b.kv_i32_array("tokenizer.ggml.token_type", types);
  b.kv_u32("tokenizer.ggml.bos_token_id", 2);
  b.kv_u32("tokenizer.ggml.eos_token_id", 1);
  b.kv_u32("tokenizer.ggml.unknown_token_id", 3);
  b.kv_u32("tokenizer.ggml.padding_token_id", 0);
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 0.3f);
  auto f32 = [&](std::vector<uint64_t> ne, bool norm) {
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    std::vector<uint8_t> bytes(n * 4);
    for (uint64_t i = 0; i < n; ++i) {
      float v = norm ? 1.0f + nd(rng) : nd(rng);
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    }
    return bytes;
  };
  b.tensor("token_embd.weight", 0, {D, V}, f32({D, V}, false));
  b.tensor("output_norm.weight", 0, {D}, f32({D}, true));
  for (uint32_t l = 0; l < L; ++l) {
    auto n = [l](const char* w) { return fmt::format("blk.{}.{}.weight", l, w); };
    b.tensor(n("attn_norm"), 0, {D}, f32({D}, true));
    b.tensor(n("attn_q"), 0, {D, N * H}, f32({D, N * H}, false));
    b.tensor(n("attn_k"), 0, {D, K * H}, f32({D, K * H}, false));
    b.tensor(n("attn_v"), 0, {D, K * H}, f32({D, K * H}, false));
    b.tensor(n("attn_q_norm"), 0, {H}, f32({H}, true));
    b.tensor(n("attn_k_norm"), 0, {H}, f32({H}, true));
    b.tensor(n("attn_output"), 0, {N * H, D}, f32({N * H, D}, false));
    b.tensor(n("post_attention_norm"), 0, {D}, f32({D}, true));
    b.tensor(n("ffn_norm"), 0, {D}, f32({D}, true));
    b.tensor(n("ffn_gate"), 0, {D, F}, f32({D, F}, false));
    b.tensor(n("ffn_up"), 0, {D, F}, f32({D, F}, false));
    b.tensor(n("ffn_down"), 0, {F, D}, f32({F, D}, false));
    b.tensor(n("post_ffw_norm"), 0, {D}, f32({D}, true));
  }
  return b;
}

}  // namespace gemma::test
