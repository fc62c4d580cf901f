list(APPEND GEMMA_SOURCES formats/dtype.cpp formats/tensor_set.cpp formats/gguf.cpp formats/safetensors.cpp)
