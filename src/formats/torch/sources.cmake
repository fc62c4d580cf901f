# torch.save archives: zip container, pickle subset, state-dict tensors.
list(APPEND GEMMA_SOURCES
  formats/torch/zip_reader.cpp
  formats/torch/pickle.cpp
  formats/torch/torch_checkpoint.cpp)
