# torch.save archives (zip + pickle), and the gemma_pytorch loader built on them (model/load_torch.cpp
# is listed here so that the torch reader and its only model-level user come and go together).
list(APPEND GEMMA_SOURCES
  formats/torch/zip_reader.cpp
  formats/torch/pickle.cpp
  formats/torch/torch_checkpoint.cpp
  model/load_torch.cpp)
