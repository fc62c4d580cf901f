list(APPEND GEMMA_SOURCES image/decode.cpp image/codec_png.cpp image/codec_jpeg.cpp image/codec_webp.cpp
  image/codec_stb.cpp image/resize.cpp image/preprocess.cpp)
