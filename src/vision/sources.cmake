list(APPEND GEMMA_SOURCES vision/encoder.cpp vision/load_vision.cpp vision/load_vision_torch.cpp)
