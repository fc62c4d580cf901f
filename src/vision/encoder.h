// Gemma 3's vision path (docs/spec/architecture.md §4): the SigLIP tower and the multimodal
// projector, turning one preprocessed image (image/preprocess.h) into the soft-token embeddings
// the language model reads in place of <image_soft_token> ids (runtime/engine.h PromptEmbeddings).
// Layer gemma_vision: above gemma_model (configs, loaders), gemma_kernels (the Backend it computes
// on) and gemma_image. The tower is loaded only when an image is given (load_vision), so text-only
// use of a multimodal checkpoint never maps or reads it.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "formats/tensor_set.h"
#include "kernels/backend.h"
#include "model/config.h"
#include "util/result.h"

namespace gemma {

// Canonical vision tensor names (llama.cpp's mmproj GGUF names, clip.cpp / convert_hf_to_gguf.py),
// in the layout the encoder consumes (see load_vision for how each source maps onto them):
//   v.patch_embd.weight      [hidden, 3 * patch * patch]  (conv kernel flattened c, ky, kx)
//   v.patch_embd.bias        [hidden]
//   v.position_embd.weight   [n_patches, hidden]
//   v.blk.N.ln1.{weight,bias}, v.blk.N.attn_{q,k,v,out}.{weight,bias}, v.blk.N.ln2.{weight,bias},
//   v.blk.N.ffn_up.{weight,bias} (fc1), v.blk.N.ffn_down.{weight,bias} (fc2)
//   v.post_ln.{weight,bias}
//   mm.soft_emb_norm.weight  [hidden]  the full multiplier (Gemma's 1 + w already folded in, f32)
//   mm.input_projection.weight  [hidden, text_hidden]  (in x out: HF's and llama.cpp's orientation;
//                               the encoder transposes it once at create)
class VisionEncoder {
 public:
  // cfg: the checkpoint's VisionConfig; text_hidden: the language model width; tensors: the tower
  // and projector in the canonical naming above (load_vision's output). Every shape is checked
  // against cfg and text_hidden; the tensors must outlive the encoder.
  static Result<std::unique_ptr<VisionEncoder>> create(const VisionConfig& cfg, int text_hidden,
                                                       const TensorSet& tensors, Backend& backend);
  ~VisionEncoder();
  VisionEncoder(const VisionEncoder&) = delete;
  VisionEncoder& operator=(const VisionEncoder&) = delete;

  const VisionConfig& config() const;
  int text_hidden() const;
  // Soft tokens one image gives: config().tokens_per_image.
  int tokens_per_image() const;

  // pixels: [3, image_size, image_size] floats as image/preprocess.h's pixel_values() gives them.
  // Returns [tokens_per_image, text_hidden] floats: the projected soft-token embeddings, NOT
  // multiplied by the text embedding scale (HF's get_image_features does not scale them).
  Result<std::vector<float>> encode(std::span<const float> pixels);

  struct Impl;

 private:
  explicit VisionEncoder(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The tower of a checkpoint: its config and its tensors in the canonical naming, plus whatever keeps
// the file pages alive (held by `tensors`).
struct LoadedVision {
  VisionConfig config;
  TensorSet tensors;
  int text_hidden = 0;  // the projection's output width (must equal the language model's hidden)
  std::string source;   // the file or directory the tower came from
};

// Loads only the tower: from `mmproj_path` (a llama.cpp mmproj GGUF) when it is not empty, else
// from the model checkpoint (an HF directory / safetensors file / index with a vision tower). A
// checkpoint without a tower is an invalid_argument error; a format that cannot carry one here is
// unsupported. The projection width is checked against the model's hidden when both are known.
Result<LoadedVision> load_vision(const std::string& model_path, const std::string& mmproj_path);

// The mmproj reader on bytes in memory (the fuzz target, tests): `owner` keeps them alive.
Result<LoadedVision> load_mmproj(std::span<const uint8_t> bytes, const std::string& name,
                                 std::shared_ptr<const void> owner);

}  // namespace gemma
