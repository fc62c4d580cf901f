list(APPEND GEMMA_SOURCES vision/encoder.cpp vision/load_vision.cpp)
