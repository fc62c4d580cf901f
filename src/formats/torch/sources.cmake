# torch.save archives (zip + pickle); the gemma_pytorch loader built on them is in model/.
list(APPEND GEMMA_SOURCES
  formats/torch/zip_reader.cpp
  formats/torch/pickle.cpp
  formats/torch/torch_checkpoint.cpp)
